"""Jobs of different teams take turns on one worker: a run works one slice (JOB_SLICE_ITEMS
items or JOB_SLICE_SECONDS), then queues itself again behind what was queued meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from characters.bulk import importing, syncing
from characters.models import Character
from jobs import running
from jobs.models import Job, JobItem
from teams.models import Membership, Role
from tests.factories import TeamFactory
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


def test_a_short_job_of_another_team_runs_between_the_slices_of_a_long_one(
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    add_key: Callable[..., Key],
    create: Callable[..., Any],
    settings: Any,
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1
    settings.JOB_SLICE_ITEMS = 5
    other = make_member(Role.EDITOR, TeamFactory())
    other_key = add_key(other, "Other key")
    create(actor=other, key=other_key, name="Solo")
    remote = seed_remote(editor_key, 30)
    long = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    short = syncing.start_sync_all(actor=other)  # queued after the long one

    run_worker()

    long, short = fresh(long), fresh(short)
    assert (long.state, long.done, short.state, short.done) == ("done", 30, "done", 1)
    # The short job finished after the long one's first slice (5 items, and what was in
    # flight when the slice ended), not after all 30.
    assert short.finished_at is not None
    before = long.items.filter(finished_at__lt=short.finished_at).count()
    assert 5 <= before <= 7
    # One task per slice, each finished; the job's counts are whole, each item once.
    slices = DBTaskResult.objects.filter(task_path="characters.bulk.importing.import_all")
    assert slices.count() == long.runs >= 30 // 7
    assert set(slices.values_list("status", flat=True)) == {TaskResultStatus.SUCCESSFUL}
    assert Character.objects.filter(team=editor.team).count() == 30
    assert AuditEvent.objects.filter(action="character.import").count() == 30
    assert AuditEvent.objects.filter(action="job.finish", target_id=str(long.pk)).count() == 1


def test_a_slice_boundary_with_a_cancel_request_finishes_the_job_cancelled(
    editor: Membership, editor_key: Key, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1
    settings.JOB_SLICE_ITEMS = 3
    remote = seed_remote(editor_key, 10)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    real = running.JobRun.record_item
    seen: list[int] = []

    def record(self: Any, *args: Any, **kwargs: Any) -> bool:
        stored = real(self, *args, **kwargs)
        seen.append(1)
        if len(seen) == 3:  # the slice ends here; the cancel comes in the same moment
            Job.objects.filter(pk=job.pk).update(cancel_requested_at=self.job.created_at)
        return stored

    monkeypatch.setattr(running.JobRun, "record_item", record)
    run_worker()
    job = fresh(job)
    assert job.state == Job.State.CANCELLED and job.runs == 1
    assert job.items.filter(state=JobItem.State.PENDING).count() == 10 - job.done
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 0


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="On SQLite (one writer) a bundle's writing items run one after another by design",
)
def test_a_bundle_import_runs_on_the_pooled_engine(
    editor: Membership, editor_key: Key, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several characters at once, each in its pool thread, in the job's audit context."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from characters import services
    from characters.bundles.importing import start_bundle_import
    from characters.bundles.uploads import upload_bundle
    from tests.characters.bundle_support import document, entry

    settings.CONVAI_JOB_CONCURRENCY = 3
    data = document([entry(f"id-{n}", name=f"Char {n}") for n in range(1, 7)])
    token = upload_bundle(
        actor=editor, api_key_id=editor_key.pk, upload=SimpleUploadedFile("b.json", data)
    ).token
    job = start_bundle_import(actor=editor, api_key_id=editor_key.pk, token=token)
    together = threading.Barrier(3, timeout=20)
    threads: set[str] = set()
    real = services.create_character

    def create(**kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        if kwargs["name"] in ("Char 1", "Char 2", "Char 3"):
            together.wait()  # only passes if three creates are in flight at once
        return real(**kwargs)

    monkeypatch.setattr(services, "create_character", create)
    run_worker()
    job = fresh(job)
    assert (job.state, job.done, job.failed) == ("done", 6, 0)
    assert len(threads) == 3 and all(name.startswith(f"job-{job.pk}") for name in threads)
    created = AuditEvent.objects.filter(action="character.create")
    assert {event.origin for event in created} == {f"task import_bundle #{job.pk}"}
    assert created.count() == 6


def test_between_two_slices_the_page_says_the_job_is_taking_turns(
    editor: Membership,
    editor_key: Key,
    settings: Any,
    login: Callable[[Membership], Any],
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1
    settings.JOB_SLICE_ITEMS = 2
    remote = seed_remote(editor_key, 5)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    run_worker(max_tasks=1)
    job = fresh(job)
    assert job.state == Job.State.QUEUED and job.runs == 1 and 2 <= job.done < 5
    page = login(editor).get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    html = page.content.decode()
    assert "Taking turns with other jobs" in html and "the worker is not running" not in html
    run_worker()
    assert (fresh(job).state, fresh(job).done) == ("done", 5)
