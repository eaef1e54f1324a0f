"""Several keys, one remote account: keys created with the same account see and act on the same
characters (as keys of one Convai account do); keys of other accounts see none of them."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from convai.client import ConvaiClient
from convai.errors import ConvaiRequestError
from sandbox.models import SandboxAccount, SandboxCharacter, SandboxKey
from sandbox.services import (
    authenticate,
    configure_sandbox_account,
    create_sandbox_key,
    revoke_sandbox_keys,
)

MakeClient = Callable[..., ConvaiClient]


@pytest.fixture
def studio_keys(transactional_db: None) -> tuple[str, str]:
    return (
        create_sandbox_key(label="writer", account="studio"),
        create_sandbox_key(label="engineer", account="studio"),
    )


def test_keys_of_one_account_share_it_and_stay_hashed(studio_keys: tuple[str, str]) -> None:
    first, second = (authenticate(key) for key in studio_keys)
    assert first is not None and second is not None
    assert first.account_id == second.account_id
    assert first.account.name == "studio"
    assert SandboxAccount.objects.count() == 1
    for key in studio_keys:
        assert SandboxKey.objects.filter(key_hash=hashlib.sha256(key.encode()).hexdigest())


def test_every_key_of_an_account_acts_on_the_same_characters(
    make_client: MakeClient, studio_keys: tuple[str, str]
) -> None:
    writer, engineer = (make_client(key) for key in studio_keys)
    char_id = writer.create_character("Raymond", "MALE", "A criminal mastermind.")
    assert [c.character_id for c in engineer.list_characters()] == [char_id]
    engineer.update_character(char_id, backstory="Reformed.")
    assert writer.get_character(char_id).backstory == "Reformed."
    assert engineer.get_character(name="Raymond").character_id == char_id
    copy = engineer.clone_character(char_id)
    writer.delete_character(copy)
    assert [c.character_id for c in engineer.list_characters()] == [char_id]
    account = SandboxAccount.objects.get(name="studio")
    assert writer.get_character(char_id).user_id == account.user_id


def test_another_account_sees_none_of_them(
    make_client: MakeClient, studio_keys: tuple[str, str], other_key: str
) -> None:
    char_id = make_client(studio_keys[0]).create_character("Raymond", "MALE", "Private.")
    outsider = make_client(other_key)
    assert outsider.list_characters() == []
    for call in (
        lambda: outsider.get_character(char_id),
        lambda: outsider.update_character(char_id, name="Mine"),
        lambda: outsider.clone_character(char_id),
        lambda: outsider.delete_character(char_id),
    ):
        with pytest.raises(ConvaiRequestError):
            call()
    assert SandboxCharacter.objects.get(character_id=char_id).character_name == "Raymond"


def test_without_an_account_every_key_is_its_own(transactional_db: None) -> None:
    one, two = authenticate(create_sandbox_key("same")), authenticate(create_sandbox_key("same"))
    assert one is not None and two is not None
    assert one.account_id != two.account_id
    assert one.account.name != two.account.name


def test_revoking_one_key_keeps_the_accounts_characters_until_the_last_key_goes(
    make_client: MakeClient, studio_keys: tuple[str, str]
) -> None:
    char_id = make_client(studio_keys[0]).create_character("Raymond", "MALE", "Kept.")
    revoke_sandbox_keys("writer")
    assert authenticate(studio_keys[0]) is None
    assert make_client(studio_keys[1]).get_character(char_id).backstory == "Kept."
    revoke_sandbox_keys("engineer")
    assert not SandboxAccount.objects.exists()
    assert not SandboxCharacter.objects.exists()


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_configure_changes_only_what_it_is_given() -> None:
    account = configure_sandbox_account("studio", plan_name="Professional")
    assert (account.plan_name, account.email) == ("Professional", "studio@sandbox.example.com")
    renewal = datetime(2030, 1, 31, tzinfo=UTC)
    configure_sandbox_account(
        "studio",
        email="lead@studio.example.com",
        renews_at=renewal,
        limits={"core-api": 5000},
        usage={"interactions": 12},
    )
    account.refresh_from_db()
    assert (account.plan_name, account.email, account.renews_at) == (
        "Professional",
        "lead@studio.example.com",
        renewal,
    )
    assert (account.core_api_limit, account.interactions_usage) == (5000, 12)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options",
    [{"limits": {"nope": 1}}, {"usage": {"core-api": -1}}, {"plan_name": " "}],
    ids=["unknown-metric", "negative", "blank-plan"],
)
def test_configure_refuses_impossible_settings(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        configure_sandbox_account("studio", **options)
    with pytest.raises(ValueError, match="name"):
        configure_sandbox_account("  ")


@pytest.mark.django_db
def test_key_command_joins_an_account_and_lists_it() -> None:
    out = io.StringIO()
    call_command("sandbox_key", "create", "--label", "cli", "--account", "studio", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    found = authenticate(key)
    assert found is not None and found.account.name == "studio"
    listing = io.StringIO()
    call_command("sandbox_key", "list", stdout=listing)
    assert "cli\taccount studio" in listing.getvalue()
    assert key not in listing.getvalue()


@pytest.mark.django_db
def test_account_command_sets_and_shows_plan_and_quota() -> None:
    out = io.StringIO()
    call_command(
        "sandbox_account",
        "set",
        "studio",
        "--plan",
        "Professional",
        "--email",
        "lead@studio.example.com",
        "--renews-at",
        "2030-01-31",
        "--limit",
        "core-api=5000",
        "--usage",
        "pixel_streaming=7",
        stdout=out,
    )
    account = SandboxAccount.objects.get(name="studio")
    assert account.renews_at == datetime(2030, 1, 31, tzinfo=UTC)
    assert (account.core_api_limit, account.pixel_streaming_usage) == (5000, 7)
    shown = io.StringIO()
    call_command("sandbox_account", "show", "studio", stdout=shown)
    text = shown.getvalue()
    assert "studio <lead@studio.example.com>: plan Professional, renews 2030-01-31" in text
    assert "core-api 0/5000" in text and "pixel_streaming 7/60" in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments",
    [["--limit", "core-api"], ["--usage", "tokens=3"], ["--renews-at", "soon"]],
    ids=["no-number", "unknown-metric", "bad-date"],
)
def test_account_command_refuses_bad_input(arguments: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("sandbox_account", "set", "studio", *arguments, stdout=io.StringIO())
