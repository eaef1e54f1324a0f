"""The keyed chain against someone who can write to the database but not read the server's
environment: every kind of tampering is detected by `audit_verify`, and by the checkpoint
they cannot forge."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.chain import (
    GENESIS,
    SEALED_FIELDS,
    canonical,
    checkpoint_all,
    parse_checkpoint_lines,
    sealed_values,
    verify_all,
    verify_scope,
)
from audit.keyring import parse_audit_keys
from audit.models import AuditChain, AuditCheckpoint, AuditEvent, CheckpointKind
from audit.services import chain_scope, record
from tests.audit.tampering import delete_events, set_column, wind_head_back
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

OTHER_KEY = "other:" + "b" * 43 + "="


def events_in(team, count: int) -> list[AuditEvent]:
    user = UserFactory.create()
    return [
        record("character.update", actor=user, team=team, target_label=f"c{i}", details={"i": i})
        for i in range(count)
    ]


def verify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
        return 0, out.getvalue(), err.getvalue()
    except CommandError as error:
        return 1, out.getvalue(), err.getvalue() + str(error)


def test_an_intact_log_verifies_and_prints_its_heads() -> None:
    team = TeamFactory.create()
    events = events_in(team, 3)
    code, out, _ = verify()
    assert code == 0
    assert f"{chain_scope(team)} 3 {events[-1].hash}" in out
    assert "AUDIT-CHECKPOINT " in out


def test_events_are_sealed_with_hmac_under_the_named_key(settings) -> None:
    team = TeamFactory.create()
    event = events_in(team, 1)[0]
    event.refresh_from_db()
    ring = parse_audit_keys(settings.AUDIT_KEYS)
    assert event.key_id == ring.active_id
    expected = hmac.new(ring.keys[event.key_id], canonical(sealed_values(event)), hashlib.sha256)
    assert event.hash == expected.hexdigest()
    # Not the plain SHA-256 anyone could recompute.
    assert event.hash != hashlib.sha256(canonical(sealed_values(event))).hexdigest()


def test_an_edited_row_is_detected() -> None:
    team = TeamFactory.create()
    events = events_in(team, 3)
    set_column(events[1].pk, "target_label", "someone else")
    code, _, err = verify()
    assert code == 1
    assert "seq 2" in err and "altered" in err


def test_a_deleted_row_in_the_middle_is_detected() -> None:
    team = TeamFactory.create()
    events = events_in(team, 3)
    delete_events(events[1].pk)
    code, _, err = verify()
    assert code == 1 and "missing between seq 1 and 3" in err


def test_an_inserted_row_is_detected() -> None:
    team = TeamFactory.create()
    events = events_in(team, 2)
    forged = AuditEvent(
        team=team,
        action="character.delete",
        chain=chain_scope(team),
        seq=3,
        prev_hash=events[-1].hash,
        key_id=events[-1].key_id,
        hash="f" * 64,
        created_at=events[-1].created_at,
    )
    forged.save()
    wind_head_back(chain_scope(team), 3, forged.hash)
    code, _, err = verify()
    assert code == 1 and "seq 3" in err and "forged" in err


def test_a_chain_rewritten_without_the_secret_is_detected() -> None:
    """The attacker recomputes every link, with plain SHA-256 or a key of their own."""
    team = TeamFactory.create()
    events = events_in(team, 3)
    prev = GENESIS
    attacker_key = b"not the server's key"
    for event in AuditEvent.objects.filter(team=team).order_by("seq"):
        event.prev_hash = prev
        event.target_label = "rewritten"
        digest = hmac.new(attacker_key, canonical(sealed_values(event)), hashlib.sha256)
        set_column(event.pk, "target_label", "rewritten")
        set_column(event.pk, "prev_hash", prev)
        set_column(event.pk, "hash", digest.hexdigest())
        prev = digest.hexdigest()
    wind_head_back(chain_scope(team), 3, prev)
    report = verify_scope(chain_scope(team))
    assert sum("altered or forged" in p for p in report.problems) == len(events)


def test_relabelling_an_event_with_an_unknown_key_id_is_detected() -> None:
    team = TeamFactory.create()
    events = events_in(team, 2)
    set_column(events[0].pk, "key_id", "nokey")
    problems = verify_scope(chain_scope(team)).problems
    assert any("'nokey'" in p for p in problems)


def test_newest_rows_removed_and_head_wound_back_pass_alone_but_not_against_a_checkpoint(
    tmp_path: Path, django_capture_on_commit_callbacks, caplog
) -> None:
    team = TeamFactory.create()
    scope = chain_scope(team)
    events = events_in(team, 5)
    with (
        caplog.at_level(logging.INFO, logger="convai_admin.audit.checkpoint"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        checkpoint_all()
    log = tmp_path / "server.log"
    log.write_text("\n".join(f"2026-11-27 INFO x [-] {r.getMessage()}" for r in caplog.records))
    # The attacker also deletes the stored checkpoints: only the log copy remains.
    AuditCheckpoint.objects.all().delete()
    delete_events(events[3].pk, events[4].pk)
    wind_head_back(scope, 3, events[2].hash)
    assert verify()[0] == 0  # the database alone cannot tell
    code, _, err = verify("--checkpoint", str(log))
    assert code == 1
    assert "the newest 2+ event(s) were removed" in err


def test_checkpoints_on_stdin_and_bare_head_lines(monkeypatch) -> None:
    team = TeamFactory.create()
    events = events_in(team, 3)
    _, out, _ = verify()
    heads = [line for line in out.splitlines() if line.startswith("team:")]
    delete_events(events[2].pk)
    wind_head_back(chain_scope(team), 2, events[1].hash)
    AuditCheckpoint.objects.all().delete()
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(heads)))
    code, _, err = verify("--checkpoint", "-")
    assert code == 1 and "removed" in err


def test_a_forged_checkpoint_line_is_reported() -> None:
    team = TeamFactory.create()
    events_in(team, 1)
    line = checkpoint_all()
    body = json.loads(line.split("AUDIT-CHECKPOINT ", 1)[1])
    body["heads"][0][1] = 99
    forged = "AUDIT-CHECKPOINT " + json.dumps(body)
    assert parse_checkpoint_lines([line])[0].genuine
    assert not parse_checkpoint_lines([forged])[0].genuine


def test_a_checkpoint_is_written_every_n_events_and_logged_after_commit(
    settings, django_capture_on_commit_callbacks, caplog
) -> None:
    settings.AUDIT_CHECKPOINT_EVERY = 3
    team = TeamFactory.create()
    with (
        caplog.at_level(logging.INFO, logger="convai_admin.audit.checkpoint"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        events_in(team, 7)
    rows = list(AuditCheckpoint.objects.filter(scope=chain_scope(team)).order_by("seq"))
    assert [r.seq for r in rows] == [1, 4, 7]
    assert all(r.kind == CheckpointKind.PERIODIC for r in rows)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all(line.startswith("AUDIT-CHECKPOINT ") for line in lines)
    parsed = parse_checkpoint_lines(lines)
    assert [cp.heads[0].seq for cp in parsed] == [1, 4, 7]
    assert all(cp.genuine for cp in parsed)


def test_a_day_old_checkpoint_is_renewed_by_the_next_event(settings) -> None:
    settings.AUDIT_CHECKPOINT_EVERY = 1000
    team = TeamFactory.create()
    events_in(team, 2)
    chain = AuditChain.objects.get(scope=chain_scope(team))
    AuditChain.objects.filter(pk=chain.pk).update(
        checkpoint_at=chain.checkpoint_at.replace(year=chain.checkpoint_at.year - 1)
    )
    events_in(team, 1)
    assert AuditCheckpoint.objects.filter(kind=CheckpointKind.DAILY, seq=3).exists()


def test_the_key_can_rotate_without_breaking_old_links(settings) -> None:
    team = TeamFactory.create()
    old_spec = settings.AUDIT_KEYS
    events_in(team, 2)
    settings.AUDIT_KEYS = f"{OTHER_KEY},{old_spec}"
    newer = events_in(team, 2)
    newer[0].refresh_from_db()
    assert newer[0].key_id == "other"
    assert verify_scope(chain_scope(team)).intact
    settings.AUDIT_KEYS = OTHER_KEY  # the old key dropped: its events can no longer be checked
    problems = verify_scope(chain_scope(team)).problems
    assert any("does not hold" in p for p in problems)


def test_secrets_never_reach_an_event() -> None:
    event = record(
        "api_key.added",
        details={"raw_key": "sk-live-123", "nested": {"password": "hunter2"}, "label": "ok"},
    )
    event.refresh_from_db()
    text = json.dumps(event.details)
    assert "sk-live-123" not in text and "hunter2" not in text
    assert "label" in text


def test_verify_all_covers_every_chain() -> None:
    a, b = TeamFactory.create(), TeamFactory.create()
    events_in(a, 2)
    events_in(b, 2)
    record("auth.sign_in")
    scopes = {r.scope for r in verify_all()}
    assert {chain_scope(a), chain_scope(b), "global"} <= scopes


def test_every_sealed_field_is_an_export_column() -> None:
    """Offline re-verification of an export (docs/audit.md) needs every sealed field in it."""
    from audit.export import COLUMNS

    assert set(SEALED_FIELDS) <= set(COLUMNS)


def test_the_old_command_name_still_works() -> None:
    events_in(TeamFactory.create(), 1)
    out = io.StringIO()
    call_command("verify_audit_log", stdout=out)
    assert "intact" in out.getvalue()


def test_raw_sql_without_the_trigger_switch_is_refused_on_postgresql() -> None:
    from django.db import connection, transaction
    from django.db.utils import DatabaseError

    if connection.vendor != "postgresql":
        pytest.skip("The append-only trigger exists on PostgreSQL only (CI's PostgreSQL pass).")
    events = events_in(TeamFactory.create(), 1)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending
    for statement in (
        "UPDATE audit_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [events[0].pk])
    assert AuditEvent.objects.filter(pk=events[0].pk).exists()
