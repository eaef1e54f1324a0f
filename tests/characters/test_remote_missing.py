"""A character deleted in Convai behind our back: Convai answers a get of its ID with its
documented 400, so the record is flagged ("no longer exists on Convai"), never deleted
silently, and someone who may delete it removes it from the team without asking Convai to
delete it again. Against the live sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters import copying, errors, services
from characters.models import Character, Revision
from keys.services import revoke_api_key
from sandbox.models import SandboxCharacter
from sandbox.services import set_fault
from teams.models import Membership, Role
from teams.policy import NotAllowed
from tests.characters.support import events, key_shown
from tests.support.characters import Key, record_requests

Create = Callable[..., services.Saved]
MakeMember = Callable[..., Membership]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def character(create: Create) -> Character:
    return create().character


def gone_from_convai(character: Character) -> None:
    """Deleted in Convai's playground: the sandbox no longer has it."""
    SandboxCharacter.objects.filter(character_id=character.convai_id).delete()


def mark() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _update(actor: Membership, character: Character) -> object:
    return services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={**character.editable(), "name": "Red"},
    )


OPERATIONS: dict[str, tuple[str, Callable[[Membership, Character], object]]] = {
    "update": ("character.update", _update),
    "delete": (
        "character.delete",
        lambda a, c: services.delete_character(actor=a, character_id=c.pk, confirm_name=c.name),
    ),
    "sync": (
        "character.sync",
        lambda a, c: services.take_remote_version(actor=a, character_id=c.pk),
    ),
    "clone": (
        "character.clone",
        lambda a, c: copying.clone_character(actor=a, character_id=c.pk, new_name="Copy"),
    ),
    "drift check": (
        "character.get",
        lambda a, c: services.remote_drift(actor=a, character_id=c.pk),
    ),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_character_gone_from_convai_is_flagged_not_failed_forever(
    character: Character, editor: Membership, editor_key: Key, operation: str
) -> None:
    gone_from_convai(character)
    action, run = OPERATIONS[operation]
    after = mark()

    with pytest.raises(errors.RemoteMissing) as caught:
        run(editor, character)

    assert "no longer exists on Convai" in caught.value.message
    assert "Remove from this team" in caught.value.message
    character.refresh_from_db()
    assert character.remote_missing_at is not None
    assert (character.deleted_at, character.version) == (None, 1)  # never deleted silently
    assert Character.objects.filter(team=character.team).count() == 1
    (event,) = events(id__gt=after)
    assert (event.action, event.outcome, event.target_id, event.target_label) == (
        action,
        Outcome.FAILURE,
        character.convai_id,
        "Raymond",
    )
    assert event.details["reason"] == "gone from Convai"
    assert event.details["convai_status"] == 400
    assert key_shown(event, editor_key)


def test_other_failures_do_not_flag_it(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    """Convai down is not "gone": the usual failure, and no flag."""
    set_fault(key_label=editor_key.sandbox_label, outage=True)
    with pytest.raises(errors.ConvaiFailed) as caught:
        _update(editor, character)
    assert caught.value.status == 503
    character.refresh_from_db()
    assert character.remote_missing_at is None


def test_an_answer_from_convai_clears_the_flag(character: Character, editor: Membership) -> None:
    Character.objects.filter(pk=character.pk).update(remote_missing_at="2026-01-01T00:00:00Z")

    services.take_remote_version(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert character.remote_missing_at is None


# --- remove from this team ------------------------------------------------------------------------


def test_remove_tombstones_it_without_asking_convai_to_delete(
    character: Character, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone_from_convai(character)
    with pytest.raises(errors.RemoteMissing):
        services.take_remote_version(actor=editor, character_id=character.pk)
    sent = record_requests(monkeypatch)
    after = mark()

    removed = services.remove_missing_character(actor=editor, character_id=character.pk)

    # Convai is asked once more whether it has it (a get), never to delete it.
    assert [path for path, _ in sent] == ["/character/get"]
    character.refresh_from_db()
    assert character.deleted_at is not None and character.deleted_by_id == editor.user_id
    assert removed.pk == character.pk and character.version == 2
    latest = character.revisions.first()
    assert latest is not None
    assert (latest.number, latest.reason, latest.created_by_id) == (
        2,
        Revision.Reason.DELETED,
        editor.user_id,
    )
    (event,) = events(id__gt=after)
    assert (event.action, event.outcome, event.target_id, event.target_label) == (
        "character.delete",
        Outcome.SUCCESS,
        character.convai_id,
        "Raymond",
    )
    assert event.details["remote"] == "already gone"
    assert key_shown(event, editor_key)
    with pytest.raises(errors.CharacterDeleted):
        services.remove_missing_character(actor=editor, character_id=character.pk)


def test_remove_works_without_a_usable_key(
    character: Character, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag was set while the key worked; with the key revoked since, nothing can ask
    Convai, and the flag is enough."""
    gone_from_convai(character)
    with pytest.raises(errors.RemoteMissing):
        services.remote_drift(actor=editor, character_id=character.pk)
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    sent = record_requests(monkeypatch)

    services.remove_missing_character(actor=editor, character_id=character.pk)

    assert sent == []
    character.refresh_from_db()
    assert character.deleted_at is not None


def test_remove_refuses_a_character_convai_still_has(
    character: Character, editor: Membership
) -> None:
    after = mark()
    with pytest.raises(errors.CharacterError) as caught:
        services.remove_missing_character(actor=editor, character_id=character.pk)
    assert "Delete" in caught.value.message
    (event,) = events(id__gt=after)
    assert (event.action, event.outcome, event.details["reason"]) == (
        "character.delete",
        Outcome.FAILURE,
        "still on Convai",
    )
    character.refresh_from_db()
    assert character.deleted_at is None


def test_remove_checks_again_and_keeps_a_character_that_came_back(
    character: Character, editor: Membership
) -> None:
    """Flagged, but Convai answers the get now: not removed, and the flag is cleared."""
    Character.objects.filter(pk=character.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    after = mark()

    with pytest.raises(errors.StillOnConvai):
        services.remove_missing_character(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert (character.deleted_at, character.remote_missing_at) == (None, None)
    (event,) = events(id__gt=after)
    assert (event.outcome, event.details["reason"]) == (Outcome.FAILURE, "still on Convai")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_removing_needs_the_delete_permission(
    character: Character, make_member: MakeMember, role: str
) -> None:
    """A Viewer, or an Editor who did not create it."""
    gone_from_convai(character)
    Character.objects.filter(pk=character.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    after = mark()
    with pytest.raises(NotAllowed):
        services.remove_missing_character(actor=make_member(role), character_id=character.pk)
    (event,) = events(id__gt=after)
    assert (event.action, event.outcome) == ("character.delete", Outcome.DENIED)
    character.refresh_from_db()
    assert character.deleted_at is None


# --- pages ---------------------------------------------------------------------------------------


def _url(name: str, character: Character) -> str:
    return reverse(f"characters:{name}", args=[character.team.slug, character.pk])


def test_the_detail_page_shows_the_flag_and_offers_the_removal(
    character: Character, editor: Membership, make_member: MakeMember, client: Client
) -> None:
    gone_from_convai(character)
    client.force_login(editor.user)

    # The delete dialog meets Convai's answer first, and offers the removal instead.
    dialog = client.get(_url("character-delete", character), **HTMX).content.decode()
    assert "no longer exists on Convai" in dialog
    assert _url("character-remove", character) in dialog
    assert "Delete on Convai" not in dialog

    html = client.get(_url("character-detail", character)).content.decode()
    assert "Gone from Convai" in html
    assert "This character no longer exists on Convai." in html
    assert "Remove from this team" in html and _url("character-remove", character) in html
    assert "Check Convai again" in html
    assert _url("character-edit", character) not in html
    assert _url("character-clone", character) not in html

    # A Viewer sees the flag but is not offered the removal.
    client.force_login(make_member(Role.VIEWER).user)
    html = client.get(_url("character-detail", character)).content.decode()
    assert "This character no longer exists on Convai." in html
    assert _url("character-remove", character) not in html


def test_removing_through_the_dialog(
    character: Character, editor: Membership, client: Client
) -> None:
    gone_from_convai(character)
    Character.objects.filter(pk=character.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    client.force_login(editor.user)

    confirm = client.get(_url("character-remove", character), **HTMX)
    assert confirm.status_code == 200
    assert "Remove “Raymond” from this team?" in confirm.content.decode()

    response = client.post(_url("character-remove", character), follow=True)

    assert response.redirect_chain[-1][0] == reverse(
        "characters:character-list", args=[character.team.slug]
    )
    assert "was removed from this team" in response.content.decode()
    character.refresh_from_db()
    assert character.deleted_at is not None
    assert events("character.delete")[-1].details["remote"] == "already gone"


def test_editing_a_character_gone_from_convai_says_so(
    character: Character, editor: Membership, client: Client
) -> None:
    Character.objects.filter(pk=character.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    client.force_login(editor.user)
    response = client.get(_url("character-edit", character), follow=True)
    assert response.redirect_chain[-1][0] == _url("character-detail", character)
    assert "no longer exists on Convai" in response.content.decode()
