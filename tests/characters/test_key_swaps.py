"""A key ID swapped in a form field (a teammate's key, another team's key, garbage) is refused
by the service, which records the refusal once; nothing changes. Each test POSTs the swapped
ID through the page, as a hand-edited form would, against the live sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters import errors, services
from characters.bundles.schema import SCHEMA
from characters.models import Character
from jobs.models import Job
from sandbox.models import SandboxCharacter
from teams.models import Membership, Role
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import BACKSTORY, Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]

AddKey = Callable[..., Key]
MakeMember = Callable[..., Membership]


@pytest.fixture(autouse=True)
def uploads(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path / "bundles"


@pytest.fixture
def page(client: Client, editor: Membership, editor_key: Key) -> Client:
    client.force_login(editor.user)
    return client


@pytest.fixture
def teammates_key(add_key: AddKey, make_member: MakeMember) -> Key:
    return add_key(make_member(Role.ADMIN), "Teammate key")


def mark() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def refusal_after(after: int, action: str) -> AuditEvent:
    """The one event recorded since `after`: a refusal of `action` for an unusable key."""
    recorded = list(AuditEvent.objects.filter(id__gt=after).order_by("id"))
    assert [(e.action, e.outcome) for e in recorded] == [(action, Outcome.FAILURE)], [
        (e.action, e.outcome, e.details) for e in recorded
    ]
    assert recorded[0].details["reason"] == "key not usable"
    return recorded[0]


def url(name: str, member: Membership, *args: Any) -> str:
    return reverse(name, args=[member.team.slug, *args])


SWAPS = ["teammate", "garbage"]


def swapped(which: str, teammates_key: Key) -> str:
    return str(teammates_key.pk) if which == "teammate" else "not-a-key-id"


@pytest.mark.parametrize("which", SWAPS)
def test_create_with_a_swapped_key(
    page: Client, editor: Membership, teammates_key: Key, which: str
) -> None:
    after = mark()
    response = page.post(
        url("characters:character-create", editor),
        {
            "name": "Ada",
            "voice_type": "FEMALE",
            "backstory": "Kept as typed.",
            "api_key": swapped(which, teammates_key),
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert errors.KeyNotUsable.default_message in html
    assert "Kept as typed." in html
    refusal_after(after, "character.create")
    assert not Character.objects.exists() and not SandboxCharacter.objects.exists()


@pytest.mark.parametrize("which", SWAPS)
def test_import_lookup_with_a_swapped_key(
    page: Client, editor: Membership, teammates_key: Key, which: str
) -> None:
    after = mark()
    response = page.post(
        url("characters:character-import", editor),
        {"step": "find", "lookup": "Ada", "api_key": swapped(which, teammates_key)},
    )
    assert response.status_code == 200
    assert errors.KeyNotUsable.default_message in response.content.decode()
    refusal_after(after, "character.import")


@pytest.mark.parametrize("which", SWAPS)
def test_copy_to_a_swapped_key(
    page: Client,
    editor: Membership,
    create: Callable[..., services.Saved],
    add_key: AddKey,
    teammates_key: Key,
    which: str,
) -> None:
    source = create().character
    add_key(editor, "Production key")  # a real target, so the page shows the form
    remote_before = SandboxCharacter.objects.count()
    after = mark()
    response = page.post(
        url("bundles:copy", editor, source.pk), {"key": swapped(which, teammates_key)}
    )
    assert response.status_code == 200
    assert errors.KeyNotUsable.default_message in response.content.decode()
    refusal_after(after, "character.copy")
    assert Character.objects.count() == 1
    assert SandboxCharacter.objects.count() == remote_before


def _bundle() -> bytes:
    character = {
        "convai_id": "abc-123",
        "name": "Ada",
        "voice_type": "FEMALE",
        "backstory": BACKSTORY,
        "actions": ["Wave"],
        "language_codes": ["en-US"],
    }
    return json.dumps({"schema": SCHEMA, "characters": [character]}).encode()


@pytest.mark.parametrize("which", SWAPS)
def test_bundle_upload_with_a_swapped_key(
    page: Client, editor: Membership, teammates_key: Key, uploads: Path, which: str
) -> None:
    after = mark()
    response = page.post(
        url("bundles:import", editor),
        {
            "bundle": SimpleUploadedFile("b.json", _bundle(), "application/json"),
            "key": swapped(which, teammates_key),
        },
    )
    assert response.status_code == 200
    assert errors.KeyNotUsable.default_message in response.content.decode()
    refusal_after(after, "character.import")
    assert not uploads.exists() or not any(uploads.iterdir())


def test_bundle_confirm_with_a_swapped_key_is_recorded_once(
    page: Client, editor: Membership, editor_key: Key, teammates_key: Key
) -> None:
    uploaded = page.post(
        url("bundles:import", editor),
        {
            "bundle": SimpleUploadedFile("b.json", _bundle(), "application/json"),
            "key": str(editor_key.pk),
        },
    )
    preview = uploaded["Location"].split("?")[0]
    after = mark()
    response = page.post(preview, {"key": str(teammates_key.pk)}, follow=True)
    assert response.status_code == 200
    assert errors.KeyNotUsable.default_message in response.content.decode()
    refusal_after(after, "character.import")
    assert not Job.objects.exists()


def test_import_all_confirm_with_a_swapped_key_is_recorded_once(
    page: Client, editor: Membership, teammates_key: Key
) -> None:
    after = mark()
    response = page.post(
        url("jobs:import-all", editor),
        {"key": str(teammates_key.pk), "convai_id": ["abc-123"]},
        follow=True,
    )
    assert response.status_code == 200
    assert errors.KeyNotUsable.default_message in response.content.decode()
    refusal_after(after, "character.import")
    assert not Job.objects.exists()


@pytest.mark.parametrize("which", ["another team's key", "garbage"])
def test_rebind_to_a_swapped_key(
    client: Client,
    create: Callable[..., services.Saved],
    make_member: MakeMember,
    add_key: AddKey,
    which: str,
) -> None:
    character = create().character
    admin = make_member(Role.ADMIN)
    add_key(admin, "Admin key")  # a real candidate, so the form offers a choice
    outsider = MembershipFactory(team=TeamFactory(), role=Role.OWNER)
    key_id = str(add_key(outsider, "Outsider key").pk) if which != "garbage" else "garbage"
    client.force_login(admin.user)
    after = mark()
    response = client.post(
        url("characters:character-rebind", admin, character.pk), {"api_key": key_id}
    )
    assert response.status_code == 200
    assert "Choose a verified API key of a current member" in response.content.decode()
    event = refusal_after(after, "character.rebind")
    assert event.target_id == character.convai_id
    character.refresh_from_db()
    assert character.bound_key_id is not None and str(character.bound_key_id) != key_id
