"""Every Convai answer the dashboard knows, through the services, in plain words: what happened
(naming the character and the key by label and last four) and what to do. Convai's raw text
stays in the audit event. The sandbox gives the real answers (unknown ID or name, another
account's key, a refused backstory...); tests/convai/fake_http.py only what it cannot (a
timeout, a reset, an answer nobody documented)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters import binding, errors, importing, operations, services
from characters.convai_messages import RULES
from characters.models import Character
from convai.client import ConvaiClient
from keys.models import ApiKey
from sandbox import emulator
from sandbox.models import SandboxCharacter
from sandbox.services import revoke_sandbox_keys, set_fault
from teams.models import Membership, Role
from tests.convai.fake_http import install
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    editor: Membership
    key: Key
    create: Callable[..., services.Saved]
    add_key: Callable[..., Key]
    make_member: Callable[..., Membership]
    monkeypatch: pytest.MonkeyPatch

    @property
    def key_text(self) -> str:
        return operations.key_label(self.key.api_key)

    def find(self, **lookup: str) -> Any:
        return importing.find_remote(actor=self.editor, api_key_id=self.key.pk, **lookup)

    def update(self, character: Character, **fields: Any) -> Any:
        return services.update_character(
            actor=self.editor,
            character_id=character.pk,
            expected_version=character.version,
            fields={**character.editable(), **fields},
        )

    def gone_before(self, method: str) -> None:
        """The character disappears from Convai just before `method` reaches it (after the
        service's own get), as when someone deletes it in Convai's playground meanwhile."""
        real = getattr(ConvaiClient, method)

        def vanish_then_call(client: ConvaiClient, char_id: str, *args: Any, **kw: Any) -> Any:
            SandboxCharacter.objects.filter(character_id=char_id).delete()
            return real(client, char_id, *args, **kw)

        self.monkeypatch.setattr(ConvaiClient, method, vanish_then_call)


@dataclass(frozen=True)
class Case:
    """Run `act`; the user reads `expected` (formatted with {key}, {id}, {other_key}); the audit
    event keeps `raw`, Convai's own words (None: Convai sent none)."""

    name: str
    act: Callable[[World], None]
    expected: str
    raw: str | None


def unknown_id(w: World) -> None:
    w.find(convai_id="0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f")


def unknown_name(w: World) -> None:
    w.find(name="Nobody")


def rebind_to_another_account(w: World) -> None:
    character = w.create().character
    admin = w.make_member(Role.ADMIN)
    other = w.add_key(admin, "Personal key")
    binding.rebind_character(actor=admin, character_id=character.pk, api_key_id=other.pk)


def update_gone_meanwhile(w: World) -> None:
    character = w.create().character
    w.gone_before("update_character")
    w.update(character, name="Renamed")


def delete_gone_meanwhile(w: World) -> None:
    character = w.create().character
    w.gone_before("delete_character")
    services.delete_character(
        actor=w.editor, character_id=character.pk, confirm_name=character.name
    )


def backstory_refused(w: World) -> None:
    character = w.create().character
    w.update(character, backstory="x" * (emulator.MAX_BACKSTORY_LENGTH + 1))


def value_refused(w: World) -> None:
    character = w.create().character
    w.update(character, language_codes=["xx-NOPE"])


def create_refused(w: World) -> None:
    w.create(voice_type=" ")


def key_revoked_in_convai(w: World) -> None:
    revoke_sandbox_keys(w.key.sandbox_label)
    w.find(convai_id="0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f")


def rate_limited(w: World) -> None:
    set_fault(rate_limit=True, retry_after=30)  # longer than a page waits: no retry
    w.find(name="Anyone")


def outage(w: World) -> None:
    set_fault(outage=True)
    w.find(name="Anyone")


def malformed(w: World) -> None:
    set_fault(malformed=True)
    w.find(name="Anyone")


def timeout(w: World) -> None:
    install(w.monkeypatch, [requests.exceptions.ReadTimeout("slow")])
    w.find(name="Anyone")


def connection_failed(w: World) -> None:
    install(w.monkeypatch, [requests.exceptions.ConnectionError("reset")])
    w.find(name="Anyone")


def undocumented_refusal(w: World) -> None:
    install(w.monkeypatch, [(400, {"ERROR": "Quota of characters reached for this plan."})])
    w.find(name="Anyone")


CASES = [
    Case(
        "get by an unknown ID",
        unknown_id,
        "No character with the ID 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f in the Convai account of "
        "the key {key}. Check the ID, or look it up with a key of the account that owns it.",
        emulator.GET_FAILED,
    ),
    Case(
        "get by an unknown name",
        unknown_name,
        "No character named “Nobody” in the Convai account of the key {key}. Names must match "
        "exactly, capitals included: check the name, or look the character up by its ID.",
        emulator.GET_FAILED,
    ),
    Case(
        "rebind to a key of another account",
        rebind_to_another_account,
        "The key {other_key} cannot reach this character: its Convai account does not have "
        "it. Choose a key of the account that owns the character.",
        emulator.GET_FAILED,
    ),
    Case(
        "update of a character deleted in Convai meanwhile",
        update_gone_meanwhile,
        "Convai has no character with the ID {id} in the account of the key {key}: it was "
        "deleted in Convai, or belongs to another account. Use “Sync” to check.",
        emulator.NOT_FOUND,
    ),
    Case(
        "delete of a character deleted in Convai meanwhile",
        delete_gone_meanwhile,
        "Convai has no character with the ID {id} in the account of the key {key}: it was "
        "deleted in Convai, or belongs to another account. Use “Sync” to check.",
        emulator.NOT_FOUND,
    ),
    Case(
        "update with a backstory Convai refuses",
        backstory_refused,
        "Convai did not accept the backstory. Check it for a very long text or unusual "
        "characters and save again; what you typed is kept.",
        emulator.BACKSTORY_FAILED,
    ),
    Case(
        "update with a value Convai refuses",
        value_refused,
        "Convai did not accept one of the changed values (name, voice, actions or languages). "
        "Check them and save again; what you typed is kept.",
        emulator.UPDATE_FAILED,
    ),
    Case(
        "create refused",
        create_refused,
        "Convai did not create the character: it found the name, voice, backstory or actions "
        "invalid. Check them and try again; what you typed is kept.",
        emulator.CREATE_FAILED,
    ),
    Case(
        "a key Convai no longer accepts",
        key_revoked_in_convai,
        "Convai rejected the key {key}: it is no longer valid (deleted or replaced in Convai). "
        "Its owner can check it on the API keys page; an Admin can rebind the character to "
        "another key.",
        emulator.INVALID_KEY,
    ),
    Case(
        "rate limited",
        rate_limited,
        "Convai is rate limiting requests; try again in 30 seconds.",
        "Too many requests",
    ),
    Case(
        "outage (HTTP 503)",
        outage,
        "Convai is not available right now (HTTP 503). Try again in a moment.",
        None,
    ),
    Case(
        "an answer that cannot be read",
        malformed,
        "Convai sent an answer that could not be understood. Try again; if it keeps "
        "happening, Convai may be having problems.",
        None,
    ),
    Case(
        "timeout",
        timeout,
        "Convai did not answer in time. If you were creating or changing something, it may "
        "still have happened: sync to check before trying again.",
        None,
    ),
    Case(
        "connection failed",
        connection_failed,
        "Convai could not be reached: the connection failed. Check the network and try again "
        "in a moment.",
        None,
    ),
    Case(
        "a refusal nobody documented",
        undocumented_refusal,
        "Convai refused the request (HTTP 400): “Quota of characters reached for this plan.”. "
        "Check what you entered and try again; the audit log keeps Convai's full answer.",
        "Quota of characters reached for this plan.",
    ),
]


@pytest.fixture
def world(
    editor: Membership,
    editor_key: Key,
    create: Callable[..., services.Saved],
    add_key: Callable[..., Key],
    make_member: Callable[..., Membership],
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    return World(editor, editor_key, create, add_key, make_member, monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_convai_answer_reads_as_what_happened_and_what_to_do(world: World, case: Case) -> None:
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with pytest.raises(errors.CharacterError) as caught:
        case.act(world)
    shown = caught.value.message
    assert shown == case.expected.format(**_names(world))
    assert "INTERNAL SERVER ERROR" not in shown and world.key.raw not in shown
    (event,) = AuditEvent.objects.filter(
        id__gt=before, outcome__in=[Outcome.FAILURE, Outcome.UNKNOWN]
    )
    if case.raw is not None:  # Convai's own words are kept for whoever investigates
        assert case.raw in event.details["convai_message"]


def _names(world: World) -> dict[str, str]:
    """{key}: the editor's key; {id}: the character the case made; {other_key}: the last key
    added besides the editor's (the rebind candidate)."""
    character = Character.objects.order_by("-id").first()
    other = ApiKey.objects.exclude(pk=world.key.pk).order_by("-created_at").first()
    return {
        "key": world.key_text,
        "id": character.convai_id if character is not None else "",
        "other_key": operations.key_label(other),
    }


def test_every_message_of_the_table_has_a_case() -> None:
    def pattern(template: str) -> re.Pattern[str]:
        return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)))

    for rule in RULES:
        assert any(pattern(rule.message).fullmatch(case.expected) for case in CASES), rule.message


@pytest.mark.parametrize("lookup", ["0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", "Nobody"])
def test_the_import_page_says_it_in_plain_words(client: Client, world: World, lookup: str) -> None:
    client.force_login(world.editor.user)
    response = client.post(
        reverse("characters:character-import", args=[world.editor.team.slug]),
        {"step": "find", "lookup": lookup, "api_key": str(world.key.pk)},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f"in the Convai account of the key {world.key_text}" in html.replace("&#x27;", "'")
    assert "INTERNAL SERVER ERROR" not in html
    assert f'value="{lookup}"' in html  # kept for another try
