"""Cloning (a copy under the source's bound key, named "<name> (copy)" by default) and deleting
(exact name, drift check, tombstone, Editors only their own). Against the live sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.models import Outcome
from characters import copying, errors, importing, selectors, services
from characters.models import Character, Revision
from sandbox.models import SandboxCharacter
from sandbox.services import clear_faults, set_fault
from teams.models import Membership, Role
from teams.policy import NotAllowed
from tests.characters.support import events, expect_failure, key_shown, remote
from tests.factories import TeamFactory
from tests.support.characters import BACKSTORY, Key

Create = Callable[..., services.Saved]


@pytest.fixture
def character(create: Create) -> Character:
    return create().character


# --- clone ---------------------------------------------------------------------------------------


def test_a_clone_is_named_after_its_source_by_default(
    character: Character, editor_key: Key, make_member: Callable[..., Membership]
) -> None:
    """Cloned by a teammate with no key of their own: through the source's bound key."""
    teammate = make_member(Role.EDITOR)

    saved = copying.clone_character(
        actor=teammate, character_id=character.pk, new_name="  ", include_kb=False
    )

    copy = Character.objects.get(pk=saved.character.pk)
    assert saved.warnings == []
    assert copy.pk != character.pk and copy.convai_id != character.convai_id
    assert copy.name == "Raymond (copy)"
    assert remote(copy).character_name == "Raymond (copy)"
    assert (copy.backstory, copy.voice_type, copy.actions) == (BACKSTORY, "MALE", ["Wave", "Sit"])
    assert copy.bound_key_id == editor_key.pk
    assert copy.created_by_id == teammate.user_id
    assert copy.team_id == character.team_id
    assert copy.snapshot["character_id"] == copy.convai_id
    (revision,) = copy.revisions.all()
    assert (revision.reason, revision.created_by_id) == (Revision.Reason.CLONED, teammate.user_id)
    (event,) = events("character.clone")
    assert (event.outcome, event.target_id, event.target_label) == (
        Outcome.SUCCESS,
        copy.convai_id,
        "Raymond (copy)",
    )
    assert event.details["source"] == character.convai_id
    assert event.details["source_name"] == "Raymond"
    assert event.details["kb"] is False
    assert key_shown(event, editor_key), event.details
    # The source is untouched.
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
    assert remote(character).character_name == "Raymond"


@pytest.mark.parametrize("include_kb", [True, False])
def test_the_knowledge_bank_flag_is_passed_to_convai(
    character: Character, editor: Membership, include_kb: bool
) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(
        knowledge_base=["manual.pdf"]
    )
    saved = copying.clone_character(
        actor=editor, character_id=character.pk, new_name="Red", include_kb=include_kb
    )
    assert saved.character.name == "Red"
    assert remote(saved.character).knowledge_base == (["manual.pdf"] if include_kb else [])
    assert events("character.clone")[0].details["kb"] is include_kb


def test_a_failed_clone_stores_nothing(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    set_fault(key_label=editor_key.sandbox_label, outage=True)
    with pytest.raises(errors.ConvaiFailed) as caught:
        copying.clone_character(actor=editor, character_id=character.pk, new_name="")
    assert caught.value.maybe_happened is False  # refused outright, not timed out
    assert Character.objects.count() == 1
    assert SandboxCharacter.objects.count() == 1
    (event,) = events("character.clone")
    assert (event.outcome, event.details["convai_status"]) == (Outcome.FAILURE, 503)


def test_a_viewer_cannot_clone(
    character: Character, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    with pytest.raises(NotAllowed):
        copying.clone_character(actor=viewer, character_id=character.pk, new_name="")
    assert SandboxCharacter.objects.count() == 1
    (event,) = events("character.clone")
    assert event.outcome == Outcome.DENIED


# --- delete --------------------------------------------------------------------------------------


def test_delete_needs_the_exact_name(character: Character, editor: Membership) -> None:
    for typed in ("raymond", "Raymon", ""):
        with pytest.raises(errors.NameMismatch):
            services.delete_character(actor=editor, character_id=character.pk, confirm_name=typed)
    assert remote(character)
    character.refresh_from_db()
    assert character.deleted_at is None
    # One refusal per attempt, recorded where the name was checked; Convai was not asked.
    refusals = events("character.delete")
    assert [(e.outcome, e.details["reason"]) for e in refusals] == [
        (Outcome.FAILURE, "name mismatch")
    ] * 3
    assert {(e.target_id, e.target_label) for e in refusals} == {(character.convai_id, "Raymond")}


def test_delete_leaves_a_readable_tombstone(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    deleted = services.delete_character(
        actor=editor, character_id=character.pk, confirm_name=" Raymond "
    )

    assert not SandboxCharacter.objects.filter(character_id=character.convai_id).exists()
    character.refresh_from_db()
    assert deleted.pk == character.pk
    assert character.deleted_at is not None
    assert character.deleted_by_id == editor.user_id
    assert character.version == 2
    latest = character.revisions.first()
    assert latest is not None
    assert (latest.number, latest.reason, latest.created_by_id) == (
        2,
        Revision.Reason.DELETED,
        editor.user_id,
    )
    assert selectors.team_character(editor.team, character.pk) == character
    assert list(selectors.team_characters(editor.team)) == []
    (event,) = events("character.delete")
    assert (event.outcome, event.target_id, event.target_label) == (
        Outcome.SUCCESS,
        character.convai_id,
        "Raymond",
    )
    assert key_shown(event, editor_key), event.details
    # A tombstone is read-only.
    with pytest.raises(errors.CharacterDeleted):
        services.update_character(
            actor=editor,
            character_id=character.pk,
            expected_version=2,
            fields={"name": "Back"},
        )
    with pytest.raises(errors.CharacterDeleted):
        services.delete_character(actor=editor, character_id=character.pk, confirm_name="Raymond")


def test_delete_checks_drift_first(character: Character, editor: Membership) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(
        backstory="Edited in the playground."
    )
    with pytest.raises(errors.Drift) as caught:
        services.delete_character(actor=editor, character_id=character.pk, confirm_name="Raymond")
    assert [change.field for change in caught.value.changes] == ["backstory"]
    assert remote(character)
    character.refresh_from_db()
    assert character.deleted_at is None
    (refusal,) = events("character.delete")
    assert (refusal.outcome, refusal.details["reason"]) == (Outcome.FAILURE, "drift")
    assert refusal.details["drifted"] == ["backstory"]
    assert refusal.target_id == character.convai_id

    services.delete_character(
        actor=editor, character_id=character.pk, confirm_name="Raymond", overwrite_drift=True
    )
    assert not SandboxCharacter.objects.exists()
    refusal_again, event = events("character.delete")
    assert refusal_again.pk == refusal.pk and event.outcome == Outcome.SUCCESS
    assert event.details["drift_overwritten"] == {
        "backstory": [BACKSTORY, "Edited in the playground."]
    }


def test_an_editor_may_not_delete_a_teammates_character(
    character: Character, make_member: Callable[..., Membership]
) -> None:
    other_editor = make_member(Role.EDITOR)
    with pytest.raises(NotAllowed):
        services.delete_character(
            actor=other_editor, character_id=character.pk, confirm_name="Raymond"
        )
    assert remote(character)
    character.refresh_from_db()
    assert character.deleted_at is None
    (event,) = events("character.delete")
    assert (event.outcome, event.actor_id) == (Outcome.DENIED, other_editor.user_id)
    assert (event.target_id, event.target_label) == (character.convai_id, "Raymond")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_delete_any_character_through_its_bound_key(
    character: Character, make_member: Callable[..., Membership], role: str
) -> None:
    admin = make_member(role)  # no key of their own
    services.delete_character(actor=admin, character_id=character.pk, confirm_name="Raymond")
    character.refresh_from_db()
    assert character.deleted_by_id == admin.user_id
    assert not SandboxCharacter.objects.exists()


def test_a_viewer_may_not_delete(
    character: Character, make_member: Callable[..., Membership]
) -> None:
    with pytest.raises(NotAllowed):
        services.delete_character(
            actor=make_member(Role.VIEWER), character_id=character.pk, confirm_name="Raymond"
        )
    assert remote(character)
    assert [e.outcome for e in events("character.delete")] == [Outcome.DENIED]


def test_a_character_of_another_team_does_not_exist(
    character: Character, make_member: Callable[..., Membership]
) -> None:
    outsider = make_member(Role.OWNER, TeamFactory())
    with pytest.raises(errors.CharacterNotFound):
        services.delete_character(actor=outsider, character_id=character.pk, confirm_name="Raymond")
    assert remote(character)


def test_a_clone_that_timed_out_may_have_happened_and_check_convai_adopts_the_copy(
    character: Character, editor: Membership, editor_key: Key, settings: Any
) -> None:
    settings.CONVAI_READ_TIMEOUT = 0.2
    set_fault(key_label=editor_key.sandbox_label, latency_ms=500)
    failure = expect_failure(
        lambda: copying.clone_character(actor=editor, character_id=character.pk, new_name="Red")
    )
    assert failure.maybe_happened is True
    assert Character.objects.count() == 1
    (event,) = events("character.clone")
    assert event.outcome == Outcome.UNKNOWN

    clear_faults(key_label=editor_key.sandbox_label)
    settings.CONVAI_READ_TIMEOUT = 5
    # The copy was made but not renamed: it carries the source's name.
    adopted = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Raymond")
    assert adopted.character.convai_id != character.convai_id
    assert SandboxCharacter.objects.filter(character_id=adopted.character.convai_id).exists()
