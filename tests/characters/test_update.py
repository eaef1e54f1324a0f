"""Editing a character: only changed fields go to /character/update, guarded by the version
(conflict: a teammate saved meanwhile) and by the remote state (drift: edited in Convai's
playground), then read back. Against the live sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.models import Outcome
from characters import errors, services
from characters.models import Character, Revision
from convai.client import ConvaiClient
from sandbox.models import SandboxCharacter
from sandbox.services import set_fault
from teams.models import Membership, Role
from tests.characters.support import events, expect_failure, key_shown, remote
from tests.support.characters import BACKSTORY, Key, record_requests
from tests.support.sandbox import hits

Create = Callable[..., services.Saved]
PLAYGROUND = "Edited in Convai's playground."


@pytest.fixture
def character(create: Create) -> Character:
    return create(language_codes=["en-US"]).character


def form(character: Character, **changes: Any) -> dict[str, Any]:
    """What an edit form posts: every field, some of them changed."""
    character.refresh_from_db()
    return {**character.editable(), **changes}


def update(actor: Membership, character: Character, **changes: Any) -> services.Saved:
    fields = form(character, **changes)
    return services.update_character(
        actor=actor, character_id=character.pk, expected_version=character.version, fields=fields
    )


def behind_our_back(character: Character, **fields: Any) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(**fields)


# --- what is sent --------------------------------------------------------------------------------


def test_only_the_changed_fields_are_sent(
    character: Character, editor: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_requests(monkeypatch)
    update(editor, character, name="Red")
    updates = [body for path, body in sent if path == "/character/update"]
    assert updates == [{"charID": character.convai_id, "charName": "Red"}]
    stored = remote(character)
    assert (stored.character_name, stored.backstory, stored.voice_type) == (
        "Red",
        BACKSTORY,
        "MALE",
    )


def test_actions_go_as_action_and_languages_as_a_list(
    character: Character, editor: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_requests(monkeypatch)
    update(editor, character, actions=["Jump", "Run"], language_codes=["fr-FR", "de-DE"])
    (body,) = [body for path, body in sent if path == "/character/update"]
    assert body == {
        "charID": character.convai_id,
        "action": "Jump, Run",
        "languageCodes": ["fr-FR", "de-DE"],
    }
    stored = remote(character)
    assert (stored.actions, stored.language_codes) == (["Jump", "Run"], ["fr-FR", "de-DE"])


def test_an_unchanged_form_sends_nothing_and_saves_nothing(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    before = hits(editor_key.raw)
    saved = update(editor, character)
    assert hits(editor_key.raw) == before
    assert saved.changes == [] and saved.warnings == []
    character.refresh_from_db()
    assert character.version == 1
    assert character.revisions.count() == 1
    assert events("character.update") == []


def test_each_save_adds_a_revision_and_a_version_and_one_event(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    first = update(editor, character, name="Red")
    assert [c.field for c in first.changes] == ["name"]
    update(editor, character, backstory="Reformed.", voice_type="FEMALE")

    character.refresh_from_db()
    assert character.version == 3
    assert (character.name, character.backstory, character.voice_type) == (
        "Red",
        "Reformed.",
        "FEMALE",
    )
    assert character.snapshot["backstory"] == "Reformed."
    revisions = list(character.revisions.order_by("number"))
    assert [(r.number, r.reason) for r in revisions] == [
        (1, Revision.Reason.CREATED),
        (2, Revision.Reason.UPDATED),
        (3, Revision.Reason.UPDATED),
    ]
    assert revisions[1].fields["name"] == "Red"
    assert revisions[2].fields == character.editable()
    assert all(r.created_by_id == editor.user_id for r in revisions)

    first_event, second_event = events("character.update")
    assert first_event.outcome == second_event.outcome == Outcome.SUCCESS
    assert first_event.details["changes"] == {"name": ["Raymond", "Red"]}
    assert second_event.details["changes"] == {
        "voice_type": ["MALE", "FEMALE"],
        "backstory": [BACKSTORY, "Reformed."],
    }
    assert key_shown(second_event, editor_key), second_event.details
    assert "drift_overwritten" not in second_event.details


# --- conflict ------------------------------------------------------------------------------------


def test_a_stale_version_is_a_conflict_showing_the_teammates_values(
    character: Character,
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
) -> None:
    opened_at = character.version
    teammate = make_member(Role.EDITOR)
    update(teammate, character, name="Red", backstory="Their backstory.")
    before = hits(editor_key.raw)

    with pytest.raises(errors.Conflict) as caught:
        services.update_character(
            actor=editor,
            character_id=character.pk,
            expected_version=opened_at,
            fields=form(character, name="Raymond R.", backstory="Mine."),
        )

    conflict = caught.value
    assert conflict.version == 2
    assert conflict.current["name"] == "Red"
    assert conflict.current["backstory"] == "Their backstory."
    assert conflict.by == teammate.user
    assert conflict.at is not None
    assert teammate.user.display_name in conflict.message
    assert hits(editor_key.raw) == before  # nothing sent to Convai, not even a get
    character.refresh_from_db()
    assert (character.name, character.version) == ("Red", 2)
    assert remote(character).character_name == "Red"
    refused = events("character.update", actor=editor.user)
    assert len(refused) == 1
    assert refused[0].outcome == Outcome.FAILURE
    assert refused[0].details["reason"] == "conflict"
    assert refused[0].details["version"] == [1, 2]


# --- drift ---------------------------------------------------------------------------------------


def test_a_remote_edit_is_drift_listing_the_fields_and_nothing_is_sent(
    character: Character, editor: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    behind_our_back(character, backstory=PLAYGROUND, voice_type="FEMALE")
    sent = record_requests(monkeypatch)

    with pytest.raises(errors.Drift) as caught:
        update(editor, character, name="Red")

    drift = caught.value
    assert {change.field for change in drift.changes} == {"backstory", "voice_type"}
    backstory = next(c for c in drift.changes if c.field == "backstory")
    assert (backstory.old, backstory.new) == (BACKSTORY, PLAYGROUND)
    assert backstory.is_text and backstory.label == "Backstory"
    assert drift.remote["backstory"] == PLAYGROUND
    assert "Backstory" in drift.message and "Voice" in drift.message
    assert [path for path, _ in sent] == ["/character/get"]
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
    assert remote(character).character_name == "Raymond"
    # One failure, recorded where the drift stopped the save, naming the drifted fields.
    (event,) = events("character.update")
    assert (event.outcome, event.target_id, event.target_label) == (
        Outcome.FAILURE,
        character.convai_id,
        "Raymond",
    )
    assert event.details["reason"] == "drift"
    assert sorted(event.details["drifted"]) == ["backstory", "voice_type"]
    assert event.details["drift"]["backstory"] == [BACKSTORY, PLAYGROUND]


def test_overwriting_drift_goes_through_and_is_recorded(
    character: Character, editor: Membership
) -> None:
    behind_our_back(character, backstory=PLAYGROUND)

    saved = services.update_character(
        actor=editor,
        character_id=character.pk,
        expected_version=1,
        fields=form(character, name="Red"),
        overwrite_drift=True,
    )

    assert saved.character.version == 2
    assert remote(character).character_name == "Red"
    (event,) = events("character.update")
    assert event.outcome == Outcome.SUCCESS
    assert event.details["drift_overwritten"] == {"backstory": [BACKSTORY, PLAYGROUND]}
    assert event.details["changes"] == {"name": ["Raymond", "Red"]}


def test_overwriting_drift_puts_our_values_back_on_convai(
    character: Character, editor: Membership
) -> None:
    """ "Overwrite" means the form's values win over the playground edit, for the drifted
    fields too, and the event's `drift_overwritten` is then true."""
    behind_our_back(character, backstory=PLAYGROUND)

    services.update_character(
        actor=editor,
        character_id=character.pk,
        expected_version=1,
        fields=form(character, name="Red"),
        overwrite_drift=True,
    )

    character.refresh_from_db()
    assert remote(character).backstory == BACKSTORY
    assert character.backstory == BACKSTORY


# --- taking Convai's version ---------------------------------------------------------------------


def test_taking_the_remote_version_stores_a_synced_revision(
    character: Character, editor: Membership
) -> None:
    behind_our_back(character, backstory=PLAYGROUND, actions=["Dance"])

    saved = services.take_remote_version(actor=editor, character_id=character.pk)

    assert {c.field for c in saved.changes} == {"backstory", "actions"}
    character.refresh_from_db()
    assert (character.backstory, character.actions) == (PLAYGROUND, ["Dance"])
    assert character.snapshot["backstory"] == PLAYGROUND
    assert character.version == 2
    latest = character.revisions.first()
    assert latest is not None
    assert (latest.number, latest.reason) == (2, Revision.Reason.SYNCED)
    assert latest.fields["backstory"] == PLAYGROUND
    (event,) = events("character.sync")
    assert event.outcome == Outcome.SUCCESS
    assert event.details["changes"]["backstory"] == [BACKSTORY, PLAYGROUND]
    # The edit that met the drift now goes through.
    update(editor, character, name="Red")
    assert remote(character).character_name == "Red"


def test_taking_an_unchanged_remote_version_stores_no_revision(
    character: Character, editor: Membership
) -> None:
    synced_before = Character.objects.get(pk=character.pk).synced_at

    saved = services.take_remote_version(actor=editor, character_id=character.pk)

    assert saved.changes == []
    character.refresh_from_db()
    assert character.version == 1
    assert character.revisions.count() == 1
    assert synced_before is not None and character.synced_at is not None
    assert character.synced_at >= synced_before


# --- read-back -----------------------------------------------------------------------------------


def test_a_read_back_that_differs_from_what_was_sent_is_a_warning(
    character: Character, editor: Membership
) -> None:
    # Convai takes actions as one comma-separated string: an action with a comma in it comes
    # back as two.
    saved = update(editor, character, actions=["Wave, then sit"])

    assert len(saved.warnings) == 1
    assert "Actions" in saved.warnings[0]
    character.refresh_from_db()
    assert character.actions == ["Wave", "then sit"]  # what Convai holds now
    assert character.version == 2
    (event,) = events("character.update")
    assert event.details["unconfirmed"] is True


def test_a_read_back_that_matches_gives_no_warning(
    character: Character, editor: Membership
) -> None:
    saved = update(editor, character, actions=["Wave", "Then sit"])
    assert saved.warnings == []
    assert "unconfirmed" not in events("character.update")[0].details


# --- failures ------------------------------------------------------------------------------------


def test_convai_refusing_the_update_changes_nothing_here(
    character: Character, editor: Membership
) -> None:
    with pytest.raises(errors.ConvaiFailed) as caught:
        update(editor, character, name="Red", language_codes=["xx-XX"])
    assert caught.value.maybe_happened is False
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
    assert character.revisions.count() == 1
    (event,) = events("character.update")
    assert event.outcome == Outcome.FAILURE
    assert event.details["convai_status"] == 400
    assert event.details["convai_message"] == "Could not update all_characters table."


def test_convai_down_before_the_update_changes_nothing_here(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    set_fault(key_label=editor_key.sandbox_label, outage=True)
    with pytest.raises(errors.ConvaiFailed):
        update(editor, character, name="Red")
    character.refresh_from_db()
    assert character.version == 1
    (event,) = events("character.update")
    assert (event.outcome, event.details["convai_status"]) == (Outcome.FAILURE, 503)


def test_an_update_that_timed_out_may_have_happened(
    character: Character,
    editor: Membership,
    editor_key: Key,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_update = ConvaiClient.update_character

    def slow_update(self: ConvaiClient, *args: Any, **kwargs: Any) -> None:
        settings.CONVAI_READ_TIMEOUT = 0.2
        self.timeout = (2.0, 0.2)
        set_fault(key_label=editor_key.sandbox_label, latency_ms=500)
        real_update(self, *args, **kwargs)

    monkeypatch.setattr(ConvaiClient, "update_character", slow_update)
    failure = expect_failure(lambda: update(editor, character, name="Red"))

    assert failure.maybe_happened is True
    character.refresh_from_db()
    assert character.version == 1
    (event,) = events("character.update")
    assert event.outcome == Outcome.UNKNOWN
    assert remote(character).character_name == "Red"  # it did happen
