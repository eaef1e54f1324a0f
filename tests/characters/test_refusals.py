"""Every refusal is audited once, where it is made: an unusable key for create, import, adopt
and rebind; a mistyped name for delete; drift for update and delete; no usable key for any
operation on a character; a character already in the team for import. Against the live
sandbox over HTTP (Convai is not asked when the refusal comes first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters import binding, copying, errors, importing, services
from characters.models import Character
from convai.client import ConvaiClient
from keys.services import add_api_key, revoke_api_key
from sandbox.models import SandboxCharacter
from sandbox.services import create_sandbox_key
from teams.models import Membership, Role
from teams.services import remove_member
from tests.characters.support import events, key_shown
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import BACKSTORY, Key
from tests.support.sandbox import hits

Create = Callable[..., services.Saved]
AddKey = Callable[..., Key]
MakeMember = Callable[..., Membership]
ACCOUNT = "refusals-account"


def mark() -> int:
    """The newest audit event's id: events after it are the ones the test is about."""
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def only_event(action: str, after: int = 0) -> AuditEvent:
    """The one event of `action` (and no other event about characters) after `after`."""
    recorded = events(id__gt=after)
    assert [e.action for e in recorded] == [action], [(e.action, e.details) for e in recorded]
    return recorded[0]


def assert_refused(event: AuditEvent, reason: str, *, target_id: str, label: str) -> None:
    assert event.outcome == Outcome.FAILURE
    assert event.details["reason"] == reason
    assert (event.target_type, event.target_id, event.target_label) == (
        "character",
        target_id,
        label,
    )


def unusable_key_id(which: str, actor: Membership, add_key: AddKey, make_member: MakeMember) -> Any:
    """A key id the actor may not use: a teammate's, an unverified, a revoked one, garbage."""
    if which == "another members":
        return add_key(make_member(Role.ADMIN), "Admin key").pk
    if which == "unverified":
        return add_api_key(
            actor=actor.user, label="Unverified", raw_key="ab" * 16, skip_verification=True
        ).pk
    if which == "revoked":
        key = add_key(actor, "Old key")
        revoke_api_key(actor=actor.user, api_key_id=key.pk)
        return key.pk
    return "not-a-uuid"


WHICH = ["another members", "unverified", "revoked", "not an id"]


# --- an unusable key of the actor's ---------------------------------------------------------------


@pytest.mark.parametrize("which", WHICH)
def test_create_with_an_unusable_key_is_one_refusal(
    editor: Membership, add_key: AddKey, make_member: MakeMember, which: str
) -> None:
    key_id = unusable_key_id(which, editor, add_key, make_member)
    with pytest.raises(errors.KeyNotUsable):
        services.create_character(
            actor=editor,
            api_key_id=key_id,
            name="Raymond",
            voice_type="MALE",
            backstory=BACKSTORY,
            actions=[],
            language_codes=[],
        )
    assert_refused(only_event("character.create"), "key not usable", target_id="", label="Raymond")
    assert not SandboxCharacter.objects.exists()


@pytest.mark.parametrize("which", WHICH)
def test_import_with_an_unusable_key_is_one_refusal(
    editor: Membership, add_key: AddKey, make_member: MakeMember, which: str
) -> None:
    key_id = unusable_key_id(which, editor, add_key, make_member)
    with pytest.raises(errors.KeyNotUsable):
        importing.import_character(actor=editor, api_key_id=key_id, convai_id="abc123")
    assert_refused(only_event("character.import"), "key not usable", target_id="", label="abc123")


@pytest.mark.parametrize("which", WHICH)
def test_adopt_with_an_unusable_key_is_one_refusal(
    editor: Membership, add_key: AddKey, make_member: MakeMember, which: str
) -> None:
    key_id = unusable_key_id(which, editor, add_key, make_member)
    with pytest.raises(errors.KeyNotUsable):
        importing.adopt_from_convai(actor=editor, api_key_id=key_id, name="Raymond")
    assert_refused(only_event("character.import"), "key not usable", target_id="", label="Raymond")
    assert not Character.objects.exists()


def test_importing_a_character_already_in_the_team_is_one_refusal(
    editor: Membership, editor_key: Key, make_client: Callable[..., ConvaiClient]
) -> None:
    convai_id = make_client(editor_key.raw).create_character("Dembe", "MALE", BACKSTORY)
    importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)

    with pytest.raises(errors.AlreadyInTeam):
        importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)

    success, refusal = events("character.import")
    assert success.outcome == Outcome.SUCCESS
    assert_refused(refusal, "already in team", target_id=convai_id, label="Dembe")
    assert key_shown(refusal, editor_key)
    assert Character.objects.count() == 1


# --- rebind --------------------------------------------------------------------------------------


@pytest.fixture
def shared(create: Create, make_member: MakeMember, add_key: AddKey) -> Character:
    """A character of an Editor whose key belongs to a studio account."""
    owner = make_member(Role.EDITOR)
    return create(actor=owner, key=add_key(owner, "Owner key", account=ACCOUNT)).character


@pytest.mark.parametrize("which", ["unverified", "revoked", "former member", "outsider"])
def test_rebinding_to_a_key_outside_the_candidates_is_one_refusal(
    shared: Character, make_member: MakeMember, add_key: AddKey, which: str
) -> None:
    admin = make_member(Role.ADMIN)
    if which == "unverified":
        key_id = add_api_key(
            actor=admin.user,
            label="Unverified",
            raw_key=create_sandbox_key("unverified", account=ACCOUNT),
            skip_verification=True,
        ).pk
    elif which == "revoked":
        key = add_key(admin, "Revoked", account=ACCOUNT)
        revoke_api_key(actor=admin.user, api_key_id=key.pk)
        key_id = key.pk
    elif which == "former member":
        leaver = make_member(Role.EDITOR)
        key_id = add_key(leaver, "Leaver key", account=ACCOUNT).pk
        remove_member(actor=admin, membership_id=leaver.pk)
    else:
        outsider = MembershipFactory(team=TeamFactory(), role=Role.OWNER)
        key_id = add_key(outsider, "Outsider key", account=ACCOUNT).pk
    after = mark()

    with pytest.raises(errors.KeyNotUsable):
        binding.rebind_character(actor=admin, character_id=shared.pk, api_key_id=key_id)

    assert_refused(
        only_event("character.rebind", after),
        "key not usable",
        target_id=shared.convai_id,
        label="Raymond",
    )


def test_rebinding_to_a_key_that_cannot_reach_it_is_one_refusal(
    shared: Character, make_member: MakeMember, add_key: AddKey
) -> None:
    """Another account's key: Convai's get answers 400 for a private character."""
    admin = make_member(Role.ADMIN)
    stranger = add_key(admin, "Personal key")
    after = mark()

    with pytest.raises(errors.KeyNotUsable) as caught:
        binding.rebind_character(actor=admin, character_id=shared.pk, api_key_id=stranger.pk)

    assert "Personal key" in caught.value.message
    event = only_event("character.rebind", after)
    assert_refused(event, "key cannot reach it", target_id=shared.convai_id, label="Raymond")
    assert event.details["convai_status"] == 400
    assert key_shown(event, stranger)


# --- delete: the name ----------------------------------------------------------------------------


def test_a_mistyped_name_is_one_refusal_and_convai_is_not_asked(
    create: Create, editor: Membership, editor_key: Key
) -> None:
    character = create().character
    before, after = hits(editor_key.raw), mark()

    with pytest.raises(errors.NameMismatch):
        services.delete_character(actor=editor, character_id=character.pk, confirm_name="Ray")

    assert hits(editor_key.raw) == before
    assert_refused(
        only_event("character.delete", after),
        "name mismatch",
        target_id=character.convai_id,
        label="Raymond",
    )


# --- no usable key -------------------------------------------------------------------------------


def _update(actor: Membership, character: Character) -> object:
    return services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={**character.editable(), "name": "Red"},
    )


OPERATIONS: dict[str, tuple[str, Callable[[Membership, Character], object]]] = {
    "update": ("character.update", _update),
    "sync": (
        "character.sync",
        lambda a, c: services.take_remote_version(actor=a, character_id=c.pk),
    ),
    "clone": (
        "character.clone",
        lambda a, c: copying.clone_character(actor=a, character_id=c.pk, new_name=""),
    ),
    "delete": (
        "character.delete",
        lambda a, c: services.delete_character(actor=a, character_id=c.pk, confirm_name=c.name),
    ),
    "retry languages": (
        "character.update",
        lambda a, c: services.retry_language_codes(actor=a, character_id=c.pk),
    ),
    "drift check": (
        "character.get",
        lambda a, c: services.remote_drift(actor=a, character_id=c.pk),
    ),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_any_operation_without_a_usable_key_is_one_refusal(
    create: Create, editor: Membership, editor_key: Key, make_member: MakeMember, operation: str
) -> None:
    character = create().character
    Character.objects.filter(pk=character.pk).update(pending_language_codes=["fr-FR"])
    character.refresh_from_db()
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    admin, after = make_member(Role.ADMIN), mark()
    action, run = OPERATIONS[operation]

    with pytest.raises(errors.NoUsableKey):
        run(admin, character)

    event = only_event(action, after)
    assert_refused(event, "no usable key", target_id=character.convai_id, label="Raymond")
    assert key_shown(event, editor_key)
    character.refresh_from_db()
    assert (character.version, character.deleted_at) == (1, None)


def test_an_edit_posted_without_a_usable_key_is_refused_by_the_service(
    create: Create, editor: Membership, editor_key: Key, client: Client
) -> None:
    """The page does not offer the form, but a posted edit (an open tab) still reaches the
    service, which refuses it and records the refusal."""
    character = create().character
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    client.force_login(editor.user)
    after = mark()

    response = client.post(
        reverse("characters:character-edit", args=[character.team.slug, character.pk]),
        {
            "name": "Red",
            "voice_type": "MALE",
            "backstory": BACKSTORY,
            "actions": "",
            "language_codes": character.language_codes,
            "version": 1,
        },
    )

    assert response.status_code == 200
    assert "no usable API key" in response.content.decode()
    assert_refused(
        only_event("character.update", after),
        "no usable key",
        target_id=character.convai_id,
        label="Raymond",
    )
