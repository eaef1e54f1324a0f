"""records.apply_remote_state: the one sync rule behind "Sync from Convai" and Sync all. A
revision only when something changed (an edited field, or any other key of the snapshot), the
gone-from-Convai flag cleared, one `character.sync` event either way, and the version guard a
job uses (a teammate's save meanwhile wins). Driven with payloads, no Convai call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from characters import operations, records, services
from characters.models import Character, Revision
from convai.types import CharacterDetails
from teams.models import Membership
from tests.characters.support import events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def character(create: Callable[..., services.Saved]) -> Character:
    return create(language_codes=["en-US"]).character


def remote(character: Character, **changes: Any) -> CharacterDetails:
    return CharacterDetails.from_payload({**character.snapshot, **changes})


def sync(actor: Membership, character: Character, **kwargs: Any) -> records.SyncResult:
    return records.apply_remote_state(
        actor=actor,
        character=character,
        call=operations.ConvaiCall(api_key=character.bound_key),
        **kwargs,
    )


def test_in_step_stores_no_revision_and_clears_the_missing_flag(
    character: Character, editor: Membership
) -> None:
    Character.objects.filter(pk=character.pk).update(remote_missing_at=timezone.now())
    character.refresh_from_db()

    result = sync(editor, character, remote=remote(character))

    assert result.outcome == records.SyncResult.IN_STEP and result.changes == []
    character.refresh_from_db()
    assert character.version == 1 and character.remote_missing_at is None
    assert Revision.objects.filter(character=character).count() == 1
    (event,) = events("character.sync")
    assert event.details["in_step"] is True and event.details["changes"] == {}


def test_a_change_outside_the_edited_fields_is_a_change(
    character: Character, editor: Membership
) -> None:
    result = sync(editor, character, remote=remote(character, model_details={"x": 1}))

    assert result.outcome == records.SyncResult.UPDATED
    assert result.field_changes == [] and [c.field for c in result.other_changes] == [
        "model_details"
    ]
    character.refresh_from_db()
    assert character.version == 2 and character.snapshot["model_details"] == {"x": 1}
    assert character.revisions.first().reason == Revision.Reason.SYNCED  # type: ignore[union-attr]


def test_the_version_guard_lets_a_teammates_save_win(
    character: Character, editor: Membership
) -> None:
    seen = character.version
    Character.objects.filter(pk=character.pk).update(version=F("version") + 1)

    result = sync(
        editor, character, remote=remote(character, character_name="Other"), expected_version=seen
    )

    assert result.outcome == records.SyncResult.SAVED_MEANWHILE
    character.refresh_from_db()
    assert character.name != "Other" and character.version == seen + 1
    assert events("character.sync") == []


def test_with_the_expected_version_an_unchanged_character_is_one_update(
    character: Character,
    editor: Membership,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    synced_before = character.synced_at
    details = remote(character)
    with django_assert_max_num_queries(8):
        result = sync(
            editor,
            character,
            remote=details,
            expected_version=character.version,
            note="job #1",
            extra={"job": 1},
        )

    assert result.outcome == records.SyncResult.IN_STEP
    character.refresh_from_db()
    assert character.synced_at is not None and synced_before is not None
    assert character.synced_at > synced_before and character.version == 1
    (event,) = events("character.sync")
    assert event.details["job"] == 1


def test_a_save_on_its_way_to_convai_stops_the_sync(
    character: Character, editor: Membership, settings: Any
) -> None:
    """A live claim: the save's write may land at Convai after this read, so taking what was
    read could undo it here. A claim a dead server left (expired) does not stop it."""
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=editor.user
    )
    character.refresh_from_db()
    changed = remote(character, character_name="Other")

    result = sync(editor, character, remote=changed, expected_version=character.version)

    assert result.outcome == records.SyncResult.SAVED_MEANWHILE
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
    assert events("character.sync") == []

    old = timezone.now() - timedelta(seconds=settings.CHARACTER_SAVE_CLAIM_SECONDS + 1)
    Character.objects.filter(pk=character.pk).update(saving_since=old)
    character.refresh_from_db()
    result = sync(editor, character, remote=changed, expected_version=character.version)
    assert result.outcome == records.SyncResult.UPDATED
    character.refresh_from_db()
    assert (character.name, character.version) == ("Other", 2)
