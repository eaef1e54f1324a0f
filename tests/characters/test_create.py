"""Creating a character: Convai first (create, then languages through update, then a read-back),
then the record, its first revision and one audit event together. Every failure class of the
client, produced by the sandbox over HTTP, leaves nothing local and one failure event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError

from audit.models import Outcome
from characters import errors, importing, operations, services
from characters.models import Character, Revision
from convai.client import ConvaiClient
from keys.services import add_api_key, revoke_api_key
from sandbox.models import SandboxCharacter
from sandbox.services import clear_faults, revoke_sandbox_keys, set_fault
from teams.models import Membership, Role
from tests.characters.support import events, expect_failure, key_shown, remote
from tests.support.characters import BACKSTORY, Key
from tests.support.sandbox import hits
from tests.support.secrets import assert_secret_absent, audit_text

Create = Callable[..., services.Saved]
AddKey = Callable[..., Key]


# --- success -------------------------------------------------------------------------------------


def test_create_stores_record_first_revision_and_one_success_event(
    create: Create, editor: Membership, editor_key: Key
) -> None:
    saved = create(language_codes=["fr-FR", "de-DE"])

    assert saved.warnings == []
    character = Character.objects.get(pk=saved.character.pk)
    stored = remote(character)
    assert (stored.character_name, stored.voice_type, stored.backstory) == (
        "Raymond",
        "MALE",
        BACKSTORY,
    )
    assert stored.actions == ["Wave", "Sit"]
    assert stored.language_codes == ["fr-FR", "de-DE"]
    assert character.editable() == {
        "name": "Raymond",
        "voice_type": "MALE",
        "backstory": BACKSTORY,
        "actions": ["Wave", "Sit"],
        "language_codes": ["fr-FR", "de-DE"],
    }
    assert character.team_id == editor.team_id
    assert character.bound_key_id == editor_key.pk
    assert character.created_by_id == editor.user_id
    assert character.version == 1
    assert character.pending_language_codes is None
    assert character.synced_at is not None
    assert character.deleted_at is None
    # The snapshot is the read-back, after the languages were set.
    assert character.snapshot["character_id"] == character.convai_id
    assert character.snapshot["language_codes"] == ["fr-FR", "de-DE"]
    assert character.snapshot["backstory"] == BACKSTORY

    (revision,) = character.revisions.all()
    assert (revision.number, revision.reason) == (1, Revision.Reason.CREATED)
    assert revision.fields == character.editable()
    assert revision.snapshot == character.snapshot
    assert revision.created_by_id == editor.user_id

    (event,) = events()
    assert (event.action, event.outcome) == ("character.create", Outcome.SUCCESS)
    assert (event.target_id, event.target_label) == (character.convai_id, "Raymond")
    assert event.actor_id == editor.user_id and event.team_id == editor.team_id
    assert key_shown(event, editor_key), event.details
    assert isinstance(event.details["duration_ms"], int) and event.details["duration_ms"] >= 0
    assert event.details["fields"] == {
        "name": "Raymond",
        "voice_type": "MALE",
        "actions": ["Wave", "Sit"],
        "language_codes": ["fr-FR", "de-DE"],
    }


def test_language_codes_go_through_update_only_when_chosen(create: Create, editor_key: Key) -> None:
    before = hits(editor_key.raw)
    create(name="No languages")
    assert hits(editor_key.raw) - before == 2  # create, read back
    before = hits(editor_key.raw)
    saved = create(name="Polyglot", language_codes=["es-ES"])
    assert hits(editor_key.raw) - before == 3  # create, update (languages), read back
    assert remote(saved.character).language_codes == ["es-ES"]


def test_the_success_event_commits_with_the_record_or_not_at_all(
    create: Create, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record, revision and event are one transaction; a local failure after Convai's
    success names the Convai ID, and "Check Convai" adopts it afterwards."""

    def failing_record(*args: Any, **kwargs: Any) -> None:
        raise IntegrityError("simulated")

    monkeypatch.setattr(operations, "record", failing_record)
    with pytest.raises(errors.CharacterError) as caught:
        create(name="Orphan")
    assert not isinstance(caught.value, errors.AlreadyInTeam)
    (orphan,) = SandboxCharacter.objects.filter(character_name="Orphan")
    assert orphan.character_id in caught.value.message
    assert "Check Convai" in caught.value.message
    assert not Character.objects.exists()
    assert not Revision.objects.exists()
    monkeypatch.undo()

    saved = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Orphan")
    assert saved.character.convai_id == orphan.character_id
    assert saved.character.revisions.get().reason == Revision.Reason.IMPORTED


def test_a_database_error_after_convais_success_still_names_the_convai_id(
    create: Create, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any local write failure (a locked or unreachable database, not only a constraint) must
    not lose the remote character: the user is told its ID and to use "Check Convai"."""
    real_create = Revision.objects.create

    def failing_create(**kwargs: Any) -> Revision:
        raise OperationalError("database is locked")

    monkeypatch.setattr(Revision.objects, "create", failing_create)
    with pytest.raises(errors.CharacterError) as caught:
        create(name="Orphan")
    monkeypatch.setattr(Revision.objects, "create", real_create)
    (orphan,) = SandboxCharacter.objects.filter(character_name="Orphan")
    assert orphan.character_id in caught.value.message
    assert not Character.objects.exists()


# --- languages after create ----------------------------------------------------------------------


def test_a_language_failure_after_create_leaves_a_warning_and_retry_fixes_it(
    create: Create, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Convai goes down right after the create answered: the record is kept (the character
    exists remotely) with its languages pending and a warning; the retry sets them."""
    real_create = ConvaiClient.create_character

    def create_then_outage(self: ConvaiClient, *args: Any, **kwargs: Any) -> str:
        convai_id = real_create(self, *args, **kwargs)
        set_fault(key_label=editor_key.sandbox_label, outage=True)
        return convai_id

    monkeypatch.setattr(ConvaiClient, "create_character", create_then_outage)
    saved = create(language_codes=["fr-FR"])
    monkeypatch.undo()

    character = Character.objects.get(pk=saved.character.pk)
    assert character.pending_language_codes == ["fr-FR"]
    assert character.language_codes == []
    assert len(saved.warnings) == 1
    assert "Retry languages" in saved.warnings[0]
    assert remote(character).language_codes == ["en-US"]
    assert character.revisions.count() == 1
    (event,) = events()
    assert event.outcome == Outcome.SUCCESS

    clear_faults(key_label=editor_key.sandbox_label)
    retried = services.retry_language_codes(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert retried.character.pk == character.pk
    assert character.language_codes == ["fr-FR"]
    assert character.pending_language_codes is None
    assert character.version == 2
    assert character.snapshot["language_codes"] == ["fr-FR"]
    assert remote(character).language_codes == ["fr-FR"]
    latest = character.revisions.first()
    assert latest is not None
    assert (latest.number, latest.reason) == (2, Revision.Reason.UPDATED)
    retry_event = events("character.update")[-1]
    assert retry_event.outcome == Outcome.SUCCESS
    assert retry_event.details["changes"] == {"language_codes": [[], ["fr-FR"]]}


def test_languages_convai_refuses_are_kept_pending_with_its_message(create: Create) -> None:
    saved = create(language_codes=["xx-XX"])
    assert saved.character.pending_language_codes == ["xx-XX"]
    assert "Could not update all_characters table." in saved.warnings[0]


def test_retry_without_pending_languages_does_nothing(
    create: Create, editor: Membership, editor_key: Key
) -> None:
    character = create().character
    before = hits(editor_key.raw)
    services.retry_language_codes(actor=editor, character_id=character.pk)
    assert hits(editor_key.raw) == before
    character.refresh_from_db()
    assert character.version == 1


# --- which key -----------------------------------------------------------------------------------


def _unverified(member: Membership, raw: str) -> Any:
    return add_api_key(actor=member.user, label="Unverified", raw_key=raw, skip_verification=True)


@pytest.mark.parametrize("which", ["another members", "unverified", "revoked", "not an id"])
def test_only_the_actors_own_verified_active_keys_may_own_a_character(
    create: Create,
    editor: Membership,
    make_member: Callable[..., Membership],
    add_key: AddKey,
    which: str,
) -> None:
    if which == "another members":
        key_id = add_key(make_member(Role.ADMIN), "Admin key").pk
    elif which == "unverified":
        key_id = _unverified(editor, "ab" * 16).pk
    elif which == "revoked":
        key = add_key(editor, "Old key")
        revoke_api_key(actor=editor.user, api_key_id=key.pk)
        key_id = key.pk
    else:
        key_id = "not-a-uuid"
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
    assert not SandboxCharacter.objects.exists()
    assert not Character.objects.exists()


# --- every failure class -------------------------------------------------------------------------


def _revoked_remotely(key: Key) -> None:
    revoke_sandbox_keys(key.sandbox_label)


FAILURES: dict[str, tuple[Callable[[Key], Any], dict[str, Any], int | None, str]] = {
    # name: (fault, create overrides, convai_status, start of convai_message)
    "401 revoked key": (_revoked_remotely, {}, 401, "Invalid API key provided."),
    "400 bad input": (
        lambda key: None,
        {"backstory": " "},
        400,
        "Error in creating the character.",
    ),
    "429 rate limited": (
        lambda key: set_fault(key_label=key.sandbox_label, rate_limit=True, retry_after=30),
        {},
        429,
        "Too many requests.",
    ),
    "503 html": (
        lambda key: set_fault(key_label=key.sandbox_label, outage=True),
        {},
        503,
        "Convai is not available right now (HTTP 503)",
    ),
    "malformed 200": (
        lambda key: set_fault(key_label=key.sandbox_label, malformed=True),
        {},
        200,
        "Convai sent an answer that could not be understood.",
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_create_stores_nothing_and_records_one_failure(
    create: Create, editor: Membership, editor_key: Key, failure: str
) -> None:
    fault, overrides, status, message = FAILURES[failure]
    fault(editor_key)

    with pytest.raises(errors.ConvaiFailed) as caught:
        create(**overrides)

    assert caught.value.maybe_happened is False
    assert "<html" not in caught.value.message.lower()
    assert not Character.objects.exists()
    assert not Revision.objects.exists()
    (event,) = events()
    assert (event.action, event.outcome) == ("character.create", Outcome.FAILURE)
    assert (event.target_id, event.target_label) == ("", "Raymond")
    assert event.details["convai_status"] == status
    assert event.details["convai_message"].startswith(message)
    assert "<html" not in event.details["convai_message"].lower()
    assert key_shown(event, editor_key), event.details
    assert isinstance(event.details["duration_ms"], int)
    assert_secret_absent(caught.value.message, editor_key.raw)
    assert_secret_absent(audit_text(), editor_key.raw)


def test_a_create_that_timed_out_may_have_happened_and_check_convai_adopts_it(
    create: Create, editor: Membership, editor_key: Key, settings: Any
) -> None:
    settings.CONVAI_READ_TIMEOUT = 0.2
    set_fault(key_label=editor_key.sandbox_label, latency_ms=500)

    failure = expect_failure(lambda: create(name="Slowpoke", language_codes=["fr-FR"]))

    assert failure.maybe_happened is True
    assert "may still have happened" in failure.message
    assert not Character.objects.exists()
    (event,) = events()
    assert (event.action, event.outcome) == ("character.create", Outcome.UNKNOWN)
    assert event.details["convai_status"] is None
    assert event.details["convai_message"]
    # The sandbox did the work before the answer was late.
    assert SandboxCharacter.objects.filter(character_name="Slowpoke").count() == 1

    clear_faults(key_label=editor_key.sandbox_label)
    settings.CONVAI_READ_TIMEOUT = 5
    adopted = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Slowpoke")
    character = adopted.character
    assert (
        character.convai_id == SandboxCharacter.objects.get(character_name="Slowpoke").character_id
    )
    assert character.name == "Slowpoke"
    assert character.bound_key_id == editor_key.pk
    assert character.revisions.get().reason == Revision.Reason.IMPORTED
    assert events("character.import")[-1].outcome == Outcome.SUCCESS
    assert_secret_absent(audit_text(), editor_key.raw)


# --- "Check Convai" ------------------------------------------------------------------------------


def test_adopt_imports_a_character_created_behind_our_back(
    editor: Membership, editor_key: Key, make_client: Callable[..., ConvaiClient]
) -> None:
    convai_id = make_client(editor_key.raw).create_character("Liz", "FEMALE", "An FBI agent.")

    saved = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Liz")

    character = Character.objects.get(pk=saved.character.pk)
    assert character.convai_id == convai_id
    assert (character.name, character.voice_type, character.backstory) == (
        "Liz",
        "FEMALE",
        "An FBI agent.",
    )
    assert character.created_by_id == editor.user_id
    assert character.snapshot["character_id"] == convai_id


def test_adopt_takes_the_newest_match_not_yet_in_the_team(
    create: Create, editor: Membership, editor_key: Key, make_client: Callable[..., ConvaiClient]
) -> None:
    known = create(name="Twin").character
    newer = make_client(editor_key.raw).create_character("Twin", "MALE", BACKSTORY)
    saved = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Twin")
    assert saved.character.convai_id == newer != known.convai_id


def test_adopt_says_so_when_convai_has_nothing_to_adopt(
    editor: Membership, editor_key: Key
) -> None:
    with pytest.raises(errors.CharacterError, match="did not create it"):
        importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Ghost")
    assert not Character.objects.exists()


def test_the_key_never_reaches_an_event_or_an_error(
    create: Create, editor: Membership, editor_key: Key
) -> None:
    create()
    messages = []
    for fault in (
        lambda: set_fault(key_label=editor_key.sandbox_label, outage=True),
        lambda: set_fault(key_label=editor_key.sandbox_label, malformed=True),
        lambda: revoke_sandbox_keys(editor_key.sandbox_label),
    ):
        fault()
        with pytest.raises(errors.ConvaiFailed) as caught:
            create(name="Again")
        messages.append(caught.value.message)
        messages.append(repr(caught.value))
        clear_faults(key_label=editor_key.sandbox_label)
    assert len(events()) == 4
    assert_secret_absent("\n".join(messages), editor_key.raw)
    assert_secret_absent(audit_text(), editor_key.raw)
