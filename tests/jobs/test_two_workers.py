"""Two real worker processes (`manage.py run_worker`, as `make serve` starts them) on one job,
PostgreSQL: the job passes between them slice by slice, its task is even delivered twice, and
still no item is worked twice (one character, one revision, one audit event each). The
workers' heartbeats show both alive while they run and are gone once they stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from characters.bulk import importing
from characters.models import Character, Revision
from jobs.models import Job, WorkerHeartbeat
from jobs.worker import live_workers
from sandbox.services import set_fault
from teams.models import Membership
from tests.jobs.support import ROOT, child_env, fresh, needs_shared_database, seed_remote, until
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_shared_database,
]


def test_two_workers_on_one_job_never_work_an_item_twice(
    editor: Membership, editor_key: Key, sandbox: str
) -> None:
    items = 40
    remote = seed_remote(editor_key, items)
    set_fault(key_label=editor_key.sandbox_label, latency_ms=20)
    env = child_env(
        CONVAI_API_BASE_URL=sandbox,
        CONVAI_JOB_CONCURRENCY="2",
        JOB_SLICE_ITEMS="4",  # about ten slices, each one a task either worker may take
        WORKER_HEARTBEAT_SECONDS="0.5",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--no-reload", "--interval", "0.05"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        until(lambda: live_workers().count() == 2)
        job = importing.start_import_all(
            actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
        )
        importing.import_all.enqueue(job.pk)  # a duplicate delivery of the same job
        until(lambda: fresh(job).state == Job.State.DONE, seconds=120)
        until(lambda: not DBTaskResult.objects.exclude(status="SUCCESSFUL").exists())
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [0, 0]
    assert not WorkerHeartbeat.objects.exists()  # both stopped cleanly

    job = fresh(job)
    assert (job.done, job.failed, job.skipped) == (items, 0, 0)
    characters = Character.objects.filter(team=editor.team)
    assert characters.count() == items
    assert Counter(characters.values_list("convai_id", flat=True)).most_common(1)[0][1] == 1
    assert Revision.objects.filter(character__team=editor.team).count() == items
    assert AuditEvent.objects.filter(action="character.import").count() == items
    assert AuditEvent.objects.filter(action="job.finish").count() == 1
    # Every task of the job ended well; the duplicate found the job taken and skipped it.
    results: list[Any] = list(
        DBTaskResult.objects.filter(task_path="characters.bulk.importing.import_all")
    )
    assert {row.status for row in results} == {TaskResultStatus.SUCCESSFUL}
    assert "skipped" in [row.return_value for row in results]
