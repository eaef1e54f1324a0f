"""The same job kinds on a distributed backend: django-tasks-rq (RQ on Redis) behind the same
tasks API, run by RQ's own worker class (SimpleWorker: in this process, so it shares the test
database), with its job class (django_tasks_rq.Job) as `manage.py rqworker` uses it.

Also what differs: Redis is not in the database transaction, so a job's task is sent when the
job commits (jobs/queue.py), never before, and not at all when it rolls back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from characters.bulk import importing, syncing
from characters.models import Character
from jobs import periodic
from jobs.models import Job, JobItem, PeriodicRun
from teams.models import Membership
from tests.jobs.support import fresh, seed_remote
from tests.support.characters import Key

redis = pytest.importorskip("redis")
django_rq = pytest.importorskip("django_rq")
django_tasks_rq = pytest.importorskip("django_tasks_rq")
from rq import SimpleWorker  # noqa: E402

# A Redis database number of its own (one per pytest-xdist worker): only these tests' keys.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
REDIS_URL = f"redis://127.0.0.1:6379/{12 + int(_XDIST_WORKER.removeprefix('gw') or 0) % 4}"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


@pytest.fixture
def rq_queue(settings: Any) -> Iterator[Any]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not answering at {REDIS_URL} (.ci/run starts it)")
    queues = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}}
    settings.RQ_QUEUES = queues  # django-rq reads it when it is asked for a queue
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    queue = django_rq.get_queue("default", job_class=django_tasks_rq.Job)
    queue.empty()
    yield queue
    queue.empty()


def _work(queue: Any) -> None:
    """RQ's worker until the queue is empty (burst), as `manage.py rqworker` runs it."""
    SimpleWorker([queue], connection=queue.connection, job_class=django_tasks_rq.Job).work(
        burst=True
    )


def test_import_all_runs_on_rq_in_slices(
    editor: Membership, editor_key: Key, rq_queue: Any, settings: Any
) -> None:
    # Several turns (slices of about 4 items): each requeue goes through Redis too.
    settings.CONVAI_JOB_CONCURRENCY = 1
    settings.JOB_SLICE_ITEMS = 4
    remote = seed_remote(editor_key, 12)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    assert job.task_id and rq_queue.count == 1  # sent once the job committed
    _work(rq_queue)
    job = fresh(job)
    assert (job.state, job.done, job.failed) == (Job.State.DONE, 12, 0)
    assert job.runs >= 2  # one RQ job per slice
    assert Character.objects.filter(team=editor.team).count() == 12
    result = importing.import_all.get_result(job.task_id)
    assert result.status == "SUCCESSFUL" and result.return_value == Job.State.DONE


def test_sync_all_runs_on_rq(editor: Membership, editor_key: Key, rq_queue: Any) -> None:
    remote = seed_remote(editor_key, 3)
    first = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    _work(rq_queue)
    assert fresh(first).state == Job.State.DONE
    job = syncing.start_sync_all(actor=editor)
    _work(rq_queue)
    job = fresh(job)
    assert (job.state, job.done + job.skipped, job.failed) == (Job.State.DONE, 3, 0)


def test_periodic_functions_run_on_rq(rq_queue: Any) -> None:
    names = periodic.run_due()
    assert rq_queue.count == len(names) > 0
    _work(rq_queue)
    assert set(PeriodicRun.objects.values_list("last_status", flat=True)) == {"ok"}


def test_a_job_that_rolls_back_sends_nothing_to_redis(
    editor: Membership, editor_key: Key, rq_queue: Any
) -> None:
    remote = seed_remote(editor_key, 2)
    with pytest.raises(RuntimeError), transaction.atomic():
        importing.start_import_all(
            actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
        )
        assert rq_queue.count == 0  # not before the commit
        raise RuntimeError("the surrounding transaction fails")
    assert rq_queue.count == 0 and not Job.objects.exists() and not JobItem.objects.exists()
