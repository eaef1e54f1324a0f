"""audit_prune: the sanctioned way to delete, leaving a chain that still verifies; and the chain
under concurrent writers."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import close_old_connections, connection
from django.utils import timezone

from audit.chain import verify_scope
from audit.models import AuditCheckpoint, AuditEvent, CheckpointKind
from audit.services import chain_scope, record
from tests.audit.tampering import set_column
from tests.factories import TeamFactory, UserFactory


def backdate(events: list[AuditEvent], days: int) -> None:
    """Old events, as if recorded long ago (re-sealed: only the test may write them)."""
    from audit.chain import seal

    prev = None
    for event in sorted(events, key=lambda e: e.seq):
        event.created_at = event.created_at - timedelta(days=days)
        if prev is not None:
            event.prev_hash = prev
        event.hash = seal(event)
        set_column(event.pk, "created_at", event.created_at)
        set_column(event.pk, "prev_hash", event.prev_hash)
        set_column(event.pk, "hash", event.hash)
        prev = event.hash
    return None


@pytest.mark.django_db
def test_prune_deletes_old_events_in_batches_and_what_remains_verifies() -> None:
    team = TeamFactory.create()
    user = UserFactory.create()
    old = [record("character.update", actor=user, team=team) for _ in range(7)]
    backdate(old, 400)
    # Re-link the chain head: the next event follows the re-sealed last old one.
    from audit.models import AuditChain

    last = AuditEvent.objects.get(pk=old[-1].pk)
    AuditChain.objects.filter(scope=chain_scope(team)).update(last_hash=last.hash)
    recent = [record("character.update", actor=user, team=team) for _ in range(3)]
    AuditCheckpoint.objects.all().delete()  # the backdating invalidated the stored ones
    assert verify_scope(chain_scope(team)).intact
    out = io.StringIO()
    before = (timezone.now() - timedelta(days=30)).date().isoformat()
    call_command("audit_prune", "--before", before, "--batch", "3", stdout=out)
    assert "deleted 7 event(s) through seq 7" in out.getvalue()
    remaining = list(AuditEvent.objects.filter(team=team).order_by("seq"))
    assert [e.seq for e in remaining] == [8, 9, 10, 11]
    assert remaining[-1].action == "audit.pruned"
    assert remaining[-1].details["deleted"] == 7
    assert AuditCheckpoint.objects.filter(kind=CheckpointKind.PRUNE, seq=7).exists()
    report = verify_scope(chain_scope(team))
    assert report.intact, report.problems
    assert report.pruned_through == 7
    assert recent[0].seq == 8
    # Deleting the anchor (to hide the prune, or a further deletion) breaks verification.
    AuditCheckpoint.objects.filter(kind=CheckpointKind.PRUNE).delete()
    assert not verify_scope(chain_scope(team)).intact


@pytest.mark.django_db
def test_prune_refuses_a_chain_that_does_not_verify() -> None:
    team = TeamFactory.create()
    events = [record("character.update", team=team) for _ in range(3)]
    set_column(events[0].pk, "action", "character.create")
    with pytest.raises(CommandError, match="does not verify"):
        call_command("audit_prune", "--before", "2999-01-01", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_eight_threads_of_a_thousand_events_keep_one_valid_chain() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "Concurrent writers need PostgreSQL (SQLite serialises writers, and one file "
            "is not what production runs); it runs in CI's PostgreSQL pass."
        )
    team = TeamFactory.create()
    threads_n, per_thread = 8, 1000
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            # Durability is not under test here (correctness under contention is): without
            # waiting for each commit's fsync, 8,000 serialised commits take seconds, not a minute.
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            for i in range(per_thread):
                record("character.update", team=team, target_label=f"t{n}-{i}")
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads_n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors[:3]
    report = verify_scope(chain_scope(team))
    assert report.intact, report.problems[:5]
    assert report.events == threads_n * per_thread
    assert report.last_seq == threads_n * per_thread
