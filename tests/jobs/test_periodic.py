"""The scheduler (jobs.periodic): once per period whatever the number of schedulers, queued as
a task and run by the worker, its summary kept; and the stale sweep it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from characters.bulk import importing
from jobs import periodic, running
from jobs import services as jobs
from jobs.models import Job, PeriodicRun, WorkerHeartbeat
from teams.models import Membership
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key

pytestmark = [pytest.mark.django_db(transaction=True)]

calls: list[str] = []


def counted() -> str:
    calls.append("run")
    return f"pass {len(calls)}"


def broken() -> str:
    raise RuntimeError("the drift check could not reach Convai")


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Only this module's functions, for the length of one test."""
    saved = periodic.registered()
    periodic._REGISTRY.clear()
    calls.clear()
    yield
    periodic._REGISTRY.clear()
    periodic._REGISTRY.update(saved)


def test_a_function_runs_once_per_period() -> None:
    periodic.register("test.counted", every=timedelta(minutes=5), func=counted)
    start = timezone.now()
    assert periodic.run_due(start, inline=True) == ["test.counted"]
    assert periodic.run_due(start + timedelta(minutes=4), inline=True) == []
    assert periodic.run_due(start + timedelta(minutes=5), inline=True) == ["test.counted"]
    row = PeriodicRun.objects.get(name="test.counted")
    assert (len(calls), row.runs, row.last_status, row.last_summary) == (2, 2, "ok", "pass 2")


def test_the_interval_may_be_a_setting_read_at_each_tick(settings: Any) -> None:
    settings.JOB_SWEEP_SECONDS = 60
    periodic.register("test.counted", every="JOB_SWEEP_SECONDS", func=counted)
    start = timezone.now()
    periodic.run_due(start, inline=True)
    assert periodic.run_due(start + timedelta(seconds=30), inline=True) == []
    settings.JOB_SWEEP_SECONDS = 10
    assert periodic.run_due(start + timedelta(seconds=30), inline=True) == ["test.counted"]


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite's in-memory test database is one connection"
)
def test_several_schedulers_at_once_run_a_period_once() -> None:
    periodic.register("test.counted", every=timedelta(minutes=5), func=counted)
    now = timezone.now()
    periodic.claim("test.counted", now - timedelta(hours=1))  # the row exists, long due
    barrier = threading.Barrier(4)
    won: list[bool] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            won.append(periodic.claim("test.counted", now))
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False, False, False, True]


def test_a_claim_is_conditional_on_the_period_read() -> None:
    """What a second scheduler that read the row before the first one's claim sees."""
    periodic.register("test.counted", every=timedelta(minutes=5), func=counted)
    now = timezone.now()
    assert periodic.claim("test.counted", now)
    # A scheduler whose clock is slightly behind still finds the period taken.
    assert not periodic.claim("test.counted", now + timedelta(seconds=1))
    assert not periodic.claim("test.counted", now - timedelta(seconds=1))


def test_due_functions_are_queued_and_the_worker_runs_them() -> None:
    periodic.register("test.counted", every=60, func=counted)
    periodic.register("test.broken", every=60, func=broken)
    call_command("run_scheduler", "--once")
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 2
    assert calls == []
    run_worker()
    rows = {row.name: row for row in PeriodicRun.objects.all()}
    assert (rows["test.counted"].last_status, rows["test.counted"].last_summary) == ("ok", "pass 1")
    assert rows["test.broken"].last_status == "failed"
    assert "could not reach Convai" in rows["test.broken"].last_summary
    # The next tick within the period queues nothing.
    call_command("run_scheduler", "--once")
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 0


def test_the_stale_sweep_is_registered_by_the_jobs_app(registry: None) -> None:
    from jobs.apps import JobsConfig

    JobsConfig.ready(None)  # type: ignore[arg-type]
    assert periodic.registered()["jobs.sweep_stale"].func is jobs.sweep_stale


# --- The stale sweep --------------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox_without_counters")
def test_the_sweep_marks_a_dead_workers_job_interrupted_and_its_task_row_failed(
    editor: Membership, editor_key: Key, settings: Any
) -> None:
    remote = seed_remote(editor_key, 3)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    # A worker takes the task and the job, then is killed (nothing of it runs any more).
    row = DBTaskResult.objects.get(pk=job.task_id)
    row.claim("worker-that-dies")
    assert running._claim(job.pk) is not None
    assert jobs.sweep_stale().startswith("0 stale job(s)")  # its heartbeat is still fresh

    old = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    DBTaskResult.objects.filter(pk=row.pk).update(started_at=old)
    summary = jobs.sweep_stale()

    assert summary == (
        "1 stale job(s) marked interrupted, 0 lost task row(s) failed, 0 dead worker(s) forgotten"
    )
    job = fresh(job)
    assert job.state == Job.State.INTERRUPTED and job.can_resume
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    assert row.exception_class_path == "jobs.services.WorkerLost"
    lost = AuditEvent.objects.get(action="job.worker_lost")
    assert lost.actor is None and lost.outcome == "failure" and lost.team_id == editor.team_id
    assert lost.details["workers"] == ["worker-that-dies"] and lost.target_id == str(job.pk)
    # Swept once: a second pass finds nothing.
    assert jobs.sweep_stale().startswith("0 stale job(s)")
    assert AuditEvent.objects.filter(action="job.worker_lost").count() == 1
    # And it resumes.
    jobs.resume_job(actor=editor, job_id=job.pk)
    run_worker()
    assert fresh(job).state == Job.State.DONE


def test_the_sweep_fails_other_task_rows_left_running_long_ago(settings: Any) -> None:
    periodic.register("test.counted", every=60, func=counted)
    result = periodic.run_periodic.enqueue("test.counted")
    row = DBTaskResult.objects.get(pk=result.id)
    row.claim("worker-that-dies")
    assert "0 lost task row(s) failed" in jobs.sweep_stale()
    DBTaskResult.objects.filter(pk=row.pk).update(
        started_at=timezone.now() - timedelta(seconds=settings.TASK_STALE_SECONDS + 1)
    )
    assert "1 lost task row(s) failed" in jobs.sweep_stale()
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    event = AuditEvent.objects.get(action="task.worker_lost")
    assert event.actor is None and event.details["workers"] == ["worker-that-dies"]


def test_the_sweep_fails_a_dead_workers_task_row_at_once_and_forgets_the_worker(
    settings: Any,
) -> None:
    """A worker whose heartbeat stopped (killed, frozen) lost what it was running: its task row
    is failed on the next sweep, not TASK_STALE_SECONDS later; a live worker's is left alone."""
    periodic.register("test.counted", every=60, func=counted)
    rows = []
    for worker_id in ("worker-that-dies", "worker-alive"):
        row = DBTaskResult.objects.get(pk=periodic.run_periodic.enqueue("test.counted").id)
        row.claim(worker_id)
        rows.append(row)
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker_id="worker-that-dies",
        host="h",
        pid=1,
        last_seen=now - timedelta(seconds=settings.WORKER_STALE_SECONDS + 1),
    )
    WorkerHeartbeat.objects.create(worker_id="worker-alive", host="h", pid=2, last_seen=now)

    assert jobs.sweep_stale().endswith("1 lost task row(s) failed, 1 dead worker(s) forgotten")
    dead, alive = (DBTaskResult.objects.get(pk=row.pk) for row in rows)
    assert dead.status == TaskResultStatus.FAILED and alive.status == TaskResultStatus.RUNNING
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["worker-alive"]
    event = AuditEvent.objects.get(action="task.worker_lost")
    assert event.details["workers"] == ["worker-that-dies"]
