"""Drift that shows itself: the periodic check (characters.drift.check_drift) against the live
sandbox over HTTP. A second client edits a character directly on the sandbox, as someone in
Convai's playground would; the check marks it without touching our record, audits it once as the
system, and costs one `list` per key however many characters the key has."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from characters import drift, services
from characters.models import Character
from convai.client import ConvaiClient
from keys.models import ApiKey
from teams.models import Membership
from tests.support.characters import BACKSTORY, Key, record_requests

pytestmark = pytest.mark.django_db(transaction=True)

Create = Callable[..., services.Saved]


@pytest.fixture(autouse=True)
def _drift_check_on(settings: Any) -> None:
    settings.CONVAI_ADMIN_DRIFT_CHECK_MINUTES = 30
    settings.CONVAI_ADMIN_DRIFT_GETS_PER_KEY = 10
    settings.CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY = 0


@pytest.fixture
def playground(sandbox: str, editor_key: Key) -> ConvaiClient:
    """Someone else's client on the same Convai account, straight to the sandbox."""
    return ConvaiClient(editor_key.raw, base_url=sandbox, backoff=0)


def drift_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=drift.ACTION).order_by("id"))


def paths(sent: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [path for path, _ in sent]


def test_off_when_the_interval_is_zero(settings: Any, create: Create) -> None:
    create()
    settings.CONVAI_ADMIN_DRIFT_CHECK_MINUTES = 0

    assert "off" in drift.check_drift()


def test_nothing_changed_costs_one_list_per_key_and_records_nothing(
    create: Create, editor: Membership, add_key: Callable[..., Key], monkeypatch: Any
) -> None:
    for n in range(6):
        create(name=f"Char {n}")
    second = add_key(editor, "Second key")
    create(name="Other", key=second)
    before = AuditEvent.objects.count()
    sent = record_requests(monkeypatch)

    summary = drift.check_drift()

    assert paths(sent) == ["/character/list", "/character/list"]
    assert AuditEvent.objects.count() == before
    assert not Character.objects.filter(remote_changed_at__isnull=False).exists()
    assert "2 list call(s), 0 get(s), 0 newly changed" in summary


def test_a_playground_edit_is_marked_not_applied_and_audited_once(
    create: Create, playground: ConvaiClient, monkeypatch: Any
) -> None:
    changed = create(name="Raymond").character
    create(name="Liz")
    playground.update_character(
        changed.convai_id, name="Red", backstory="Rewritten in the playground."
    )
    sent = record_requests(monkeypatch)

    drift.check_drift()

    # One list for the key, one get for the one character whose list item differs.
    assert paths(sent) == ["/character/list", "/character/get"]
    changed.refresh_from_db()
    assert changed.remote_changed_at is not None
    assert changed.name == "Raymond" and changed.backstory == BACKSTORY  # ours, untouched
    assert changed.version == 1 and changed.revisions.count() == 1
    assert (changed.remote_state or {})["character_name"] == "Red"
    assert {c.field for c in drift.remote_changes(changed)} == {"name", "backstory"}
    (event,) = drift_events()
    assert event.actor is None and event.actor_label == ""
    assert event.origin == "task check_drift"
    assert event.target_id == changed.convai_id
    assert event.details["drifted"] == ["name", "backstory"]
    assert event.details["read"] == "get"

    # The next pass sees the same drift: no new event, and no get (nothing new in the list).
    sent.clear()
    drift.check_drift()
    assert paths(sent) == ["/character/list"]
    assert len(drift_events()) == 1


def test_gets_stay_within_the_per_pass_budget(
    create: Create, playground: ConvaiClient, settings: Any, monkeypatch: Any
) -> None:
    characters = [create(name=f"Char {n}").character for n in range(4)]
    for character in characters:
        playground.update_character(character.convai_id, name=character.name + " (edited)")
    settings.CONVAI_ADMIN_DRIFT_GETS_PER_KEY = 1
    sent = record_requests(monkeypatch)

    drift.check_drift()

    assert paths(sent) == ["/character/list", "/character/get"]
    # The list proves the drift of all four; only one was read in full.
    assert Character.objects.filter(remote_changed_at__isnull=False).count() == 4
    assert sorted(e.details["read"] for e in drift_events()) == ["get", "list", "list", "list"]


def test_the_keys_quota_bounds_the_pass(
    create: Create, editor_key: Key, playground: ConvaiClient, monkeypatch: Any
) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red")
    key = editor_key.api_key
    sent = record_requests(monkeypatch)

    ApiKey.objects.filter(pk=key.pk).update(
        usage_metrics={"core-api": {"limit": 100, "usage": 100}}
    )
    assert "1 key(s) skipped" in drift.check_drift()
    assert sent == []

    ApiKey.objects.filter(pk=key.pk).update(usage_metrics={"core-api": {"limit": 100, "usage": 99}})
    drift.check_drift()
    assert paths(sent) == ["/character/list"]  # one call left: the list, no get
    character.refresh_from_db()
    assert character.remote_changed_at is not None


def test_a_backstory_only_edit_is_found_by_the_rotating_sample(
    create: Create, playground: ConvaiClient, settings: Any, monkeypatch: Any
) -> None:
    first = create(name="First").character
    second = create(name="Second").character
    playground.update_character(second.convai_id, backstory="Only the backstory changed.")
    settings.CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY = 1
    sent = record_requests(monkeypatch)

    drift.check_drift()  # reads `first` (never read yet, lowest ID): in step
    assert paths(sent) == ["/character/list", "/character/get"]
    assert sent[1][1]["charID"] == first.convai_id
    assert not drift_events()

    drift.check_drift()  # then `second`, the least recently read
    assert sent[3][1]["charID"] == second.convai_id
    (event,) = drift_events()
    assert event.details["drifted"] == ["backstory"]


def test_sync_clears_the_mark(create: Create, editor: Membership, playground: ConvaiClient) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red")
    drift.check_drift()

    services.take_remote_version(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert character.remote_changed_at is None and character.remote_state is None
    assert character.name == "Red"


def test_keep_ours_overwrites_convai_and_clears_the_mark(
    create: Create, editor: Membership, playground: ConvaiClient
) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red", backstory="Theirs.")
    drift.check_drift()

    saved = drift.keep_local_version(
        actor=editor, character_id=character.pk, expected_version=character.version
    )

    details = playground.get_character(character.convai_id)
    assert details.character_name == "Raymond" and details.backstory == BACKSTORY
    saved.character.refresh_from_db()
    assert saved.character.remote_changed_at is None
    assert saved.character.version == 2
    (event,) = AuditEvent.objects.filter(action="character.update")
    assert set(event.details["drift_overwritten"]) == {"name", "backstory"}


def test_changed_back_in_convai_clears_the_mark(create: Create, playground: ConvaiClient) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red")
    drift.check_drift()
    playground.update_character(character.convai_id, name="Raymond")

    drift.check_drift()

    character.refresh_from_db()
    assert character.remote_changed_at is None


def test_deleted_in_convai_is_flagged_gone_once(create: Create, playground: ConvaiClient) -> None:
    character = create().character
    playground.delete_character(character.convai_id)

    drift.check_drift()
    drift.check_drift()

    character.refresh_from_db()
    assert character.remote_missing_at is not None
    (event,) = drift_events()
    assert event.details["gone"] is True


def test_a_revoked_key_is_not_used(
    create: Create, editor: Membership, editor_key: Key, monkeypatch: Any
) -> None:
    create()
    ApiKey.objects.filter(pk=editor_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    sent = record_requests(monkeypatch)

    assert "0 key(s)" in drift.check_drift()
    assert sent == []


def test_the_command_runs_one_pass(create: Create, playground: ConvaiClient) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red")
    out = StringIO()

    call_command("check_drift", stdout=out)

    assert "1 newly changed in Convai" in out.getvalue()
    character.refresh_from_db()
    assert character.remote_changed_at is not None


def test_keep_ours_when_convai_changed_back_sends_nothing_and_clears_the_mark(
    create: Create, editor: Membership, playground: ConvaiClient, monkeypatch: Any
) -> None:
    character = create().character
    playground.update_character(character.convai_id, name="Red")
    drift.check_drift()
    playground.update_character(character.convai_id, name="Raymond")
    sent = record_requests(monkeypatch)

    saved = drift.keep_local_version(
        actor=editor, character_id=character.pk, expected_version=character.version
    )

    assert paths(sent) == ["/character/get"]  # read to compare, nothing written
    assert saved.character.version == 1
    character.refresh_from_db()
    assert character.remote_changed_at is None
    assert not AuditEvent.objects.filter(action="character.update").exists()
