"""Real worker processes, killed and stopped (PostgreSQL: the child shares the test database):
a `manage.py db_worker` killed in the middle of a job leaves it running with a stale
heartbeat and its task row "running"; the periodic sweep finds both by itself. And the
scheduler stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import pytest
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from characters.bulk import importing
from jobs import periodic
from jobs import services as jobs
from jobs.models import Job, PeriodicRun
from sandbox.services import set_fault
from teams.models import Membership
from tests.jobs.support import (
    ROOT,
    child_env,
    fresh,
    needs_shared_database,
    run_worker,
    seed_remote,
    until,
)
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_shared_database,
]


def test_a_killed_worker_is_found_by_the_sweep_and_the_job_resumes(
    editor: Membership, editor_key: Key, sandbox: str, settings: Any
) -> None:
    remote = seed_remote(editor_key, 40)
    set_fault(key_label=editor_key.sandbox_label, latency_ms=100)  # slow enough to kill mid-way
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"],
        cwd=ROOT,
        env=child_env(CONVAI_API_BASE_URL=sandbox, CONVAI_JOB_CONCURRENCY="2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: fresh(job).done >= 3)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    job = fresh(job)
    assert job.state == Job.State.RUNNING and job.done < 40
    row = DBTaskResult.objects.get(pk=job.task_id)
    assert row.status == TaskResultStatus.RUNNING  # the killed worker never said otherwise

    settings.JOB_STALE_SECONDS = 1
    swept: list[str] = []

    def reaped() -> bool:
        swept.append(jobs.sweep_stale())
        return fresh(job).state == Job.State.INTERRUPTED

    until(reaped)
    assert swept[-1].startswith("1 stale job(s) marked interrupted")
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    lost = AuditEvent.objects.get(action="job.worker_lost")
    assert lost.actor is None and lost.details["workers"] == row.worker_ids

    jobs.resume_job(actor=editor, job_id=job.pk)
    set_fault(key_label=editor_key.sandbox_label, latency_ms=0)
    run_worker()
    job = fresh(job)
    assert (job.state, job.done, job.failed) == ("done", 40, 0)


def test_the_scheduler_queues_due_work_and_stops_on_sigterm() -> None:
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler", "--tick", "0.2"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Every registered function is due at once: wait until each has been queued...
        names = set(periodic.registered())
        queued = DBTaskResult.objects.filter(task_path="jobs.periodic.run_periodic")
        until(lambda: queued.count() >= len(names))
    finally:
        scheduler.send_signal(signal.SIGTERM)
        out, _ = scheduler.communicate(timeout=10)
    assert scheduler.returncode == 0
    # ...and, however many ticks passed meanwhile, once each (periods are 30 s and longer).
    assert queued.count() == len(names)
    assert set(PeriodicRun.objects.values_list("name", flat=True)) == names
    assert "jobs.sweep_stale is due" in out and out.rstrip().endswith("Scheduler stopped.")
    run_worker()
    row = PeriodicRun.objects.get(name="jobs.sweep_stale")
    assert row.last_status == "ok" and "stale job(s)" in row.last_summary
