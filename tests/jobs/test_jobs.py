"""The job lifecycle: cancel, a worker that dies (interrupted, then resumed), two jobs on the
same key or team, the job page (htmx polling, no-JS reload, constant queries, roles)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from characters.bulk import importing, syncing
from characters.models import Character
from jobs import running
from jobs import services as jobs
from jobs.models import Job, JobItem
from teams.models import Membership, Role
from tests.factories import MembershipFactory
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key, record_requests

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


def start_import(editor: Membership, key: Key, count: int, prefix: str = "Remote") -> Job:
    remote = seed_remote(key, count, prefix)
    return importing.start_import_all(
        actor=editor, api_key_id=key.pk, convai_ids=[c.character_id for c in remote]
    )


def after_items(monkeypatch: pytest.MonkeyPatch, count: int, act: Callable[[], None]) -> None:
    """Run `act` once, right after the job has recorded `count` items."""
    real = running.JobRun.record_item
    seen: list[int] = []

    def record(self: Any, *args: Any, **kwargs: Any) -> bool:
        stored = real(self, *args, **kwargs)
        seen.append(1)
        if len(seen) == count:
            act()
        return stored

    monkeypatch.setattr(running.JobRun, "record_item", record)


def test_cancel_stops_between_items_and_keeps_what_was_done(
    editor: Membership, editor_key: Key, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1
    job = start_import(editor, editor_key, 12)
    monkeypatch.setattr(running, "CHECK_EVERY_SECONDS", 0)
    after_items(monkeypatch, 3, lambda: jobs.cancel_job(actor=editor, job_id=job.pk))

    run_worker()

    job = fresh(job)
    assert job.state == Job.State.CANCELLED
    # The one in hand when the request came may still finish; nothing after it starts.
    assert 3 <= job.done <= 5 and job.failed == 0
    assert job.items.filter(state=JobItem.State.PENDING).count() == 12 - job.done
    assert Character.objects.filter(team=editor.team).count() == job.done
    assert AuditEvent.objects.filter(action="job.cancel", target_id=str(job.pk)).exists()
    finish = AuditEvent.objects.get(action="job.finish", target_id=str(job.pk))
    assert finish.details["state"] == "cancelled"


def test_a_queued_job_cancelled_before_a_worker_takes_it_never_runs(
    editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = start_import(editor, editor_key, 3)
    jobs.cancel_job(actor=editor, job_id=job.pk)
    sent = record_requests(monkeypatch)
    run_worker()
    assert fresh(job).state == Job.State.CANCELLED and job.processed == 0
    assert sent == []
    with pytest.raises(jobs.JobFinished):
        jobs.cancel_job(actor=editor, job_id=job.pk)


def test_a_killed_worker_leaves_an_interrupted_job_that_resumes_without_redoing_items(
    editor: Membership,
    editor_key: Key,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    login: Callable[[Membership], Any],
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 2
    job = start_import(editor, editor_key, 10)

    def die() -> None:
        raise KeyboardInterrupt  # the worker process is killed: nothing below it runs

    with monkeypatch.context() as patch:
        after_items(patch, 4, die)
        run_worker()  # the worker loop notes the task's crash; our job knows nothing of it
    job = fresh(job)
    # The process died while storing the fourth character: the transaction it was in (which
    # may hold more than one result: writes that arrive together are batched) never
    # committed. What did commit is consistent: as many characters as items done.
    assert job.state == Job.State.RUNNING and job.done <= 3
    assert Character.objects.filter(team=editor.team).count() == job.done
    assert job.shown_state == Job.State.RUNNING  # its heartbeat is still fresh
    done_before = set(job.items.filter(state="done").values_list("target_id", flat=True))

    # Time passes without a heartbeat: the page says "interrupted" and offers Resume.
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    )
    client = login(editor)
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    html = page.content.decode()
    assert "Interrupted" in html and "Resume" in html and "hx-trigger" not in html

    response = client.post(reverse("jobs:job-resume", args=[editor.team.slug, job.pk]))
    assert response.status_code == 302
    assert fresh(job).state == Job.State.QUEUED
    sent = record_requests(monkeypatch)
    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.failed, job.runs) == ("done", 10, 0, 2)
    fetched = {body["charID"] for path, body in sent if path == "/character/get"}
    assert len(fetched) == 10 - len(done_before) and not fetched & done_before
    assert Character.objects.filter(team=editor.team).count() == 10
    assert AuditEvent.objects.filter(action="job.resume", target_id=str(job.pk)).count() == 1
    assert AuditEvent.objects.filter(action="character.import").count() == 10


def test_a_worker_declared_dead_that_wakes_up_stops_instead_of_working_beside_the_resumed_run(
    editor: Membership, editor_key: Key
) -> None:
    job = start_import(editor, editor_key, 2)
    first = running._claim(job.pk)
    assert first is not None
    Job.objects.filter(pk=job.pk).update(state=Job.State.INTERRUPTED)
    jobs.resume_job(actor=editor, job_id=job.pk)
    run_worker()  # the resumed run does everything
    stale_run = running.JobRun(job=first[0], actor=editor, number=first[1])
    item = job.items.first()
    assert stale_run.record_item(item, JobItem.State.FAILED, "late") is False
    assert stale_run.should_stop(force=True) and stale_run.lost
    job = fresh(job)
    assert (job.done, job.failed) == (2, 0)


def test_two_jobs_on_the_same_key_are_refused(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Any]
) -> None:
    first = start_import(editor, editor_key, 2)
    with pytest.raises(jobs.JobBusy) as refused:
        start_import(editor, editor_key, 2, prefix="More")
    assert refused.value.active == first
    assert Job.objects.count() == 1
    refusal = AuditEvent.objects.get(action="job.start", outcome="failure")
    assert refusal.details["reason"] == "busy" and refusal.details["active_job"] == first.pk
    # Through the page: sent to the job that holds the key, with the reason.
    remote = seed_remote(editor_key, 1, "Third")
    response = login(editor).post(
        reverse("jobs:import-all", args=[editor.team.slug]),
        {"key": str(editor_key.pk), "convai_id": [remote[0].character_id]},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse(
        "jobs:job-detail", args=[editor.team.slug, first.pk]
    )
    assert "already working on this key" in response.content.decode()
    # Once it finished, the key is free again.
    run_worker()
    second = start_import(editor, editor_key, 1, prefix="Later")
    run_worker()
    assert fresh(second).state == Job.State.DONE


def test_the_database_allows_one_active_job_per_scope(editor: Membership) -> None:
    Job.objects.create(team=editor.team, kind="sync_all", scope="sync:1", state="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(team=editor.team, kind="sync_all", scope="sync:1", state="queued")
    Job.objects.create(team=editor.team, kind="sync_all", scope="sync:1", state="done")
    assert Job.objects.filter(Q(state="running") | Q(state="done")).count() == 2


def test_two_syncs_of_one_team_are_refused_and_a_stale_one_is_reaped(
    editor: Membership, create: Callable[..., Any], settings: Any
) -> None:
    create(name="One")
    first = syncing.start_sync_all(actor=editor)
    with pytest.raises(jobs.JobBusy):
        syncing.start_sync_all(actor=editor)
    # A sync whose worker died long ago does not block the team forever.
    Job.objects.filter(pk=first.pk).update(
        state=Job.State.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5),
    )
    second = syncing.start_sync_all(actor=editor)
    assert fresh(first).state == Job.State.INTERRUPTED
    run_worker()
    assert fresh(second).state == Job.State.DONE


def test_the_job_page_polls_while_running_and_stops_when_finished(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Any]
) -> None:
    job = start_import(editor, editor_key, 3)
    client = login(editor)
    url = reverse("jobs:job-detail", args=[editor.team.slug, job.pk])
    queued = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in queued and "<progress" in queued and "Queued" in queued
    partial = client.get(url, {"part": "progress"}, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b"<html" not in partial.content
    run_worker()
    finished = client.get(url, {"part": "progress"}, headers={"HX-Request": "true"})
    assert finished.status_code == 286  # htmx stops polling
    body = finished.content.decode()
    assert "hx-trigger" not in body and "Finished" in body and body.count("job-item-done") == 3
    # A second browser (another member) sees the same state.
    viewer = MembershipFactory(team=editor.team, role=Role.VIEWER)
    same = login(viewer).get(url).content.decode()
    assert "3 of 3 (100 %)" in same and "Cancel job" not in same


def test_a_viewer_may_watch_but_not_cancel_or_start(
    editor: Membership, editor_key: Key, make_member: Callable[..., Membership], login: Any
) -> None:
    job = start_import(editor, editor_key, 1)
    viewer = make_member(Role.VIEWER)
    client = login(viewer)
    assert (
        client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk])).status_code == 200
    )
    cancel = client.post(reverse("jobs:job-cancel", args=[editor.team.slug, job.pk]))
    assert cancel.status_code == 403
    assert client.post(reverse("jobs:sync-all", args=[editor.team.slug])).status_code == 403
    assert fresh(job).state == Job.State.QUEUED


def test_another_team_cannot_see_the_job(editor: Membership, editor_key: Key, login: Any) -> None:
    job = start_import(editor, editor_key, 1)
    outsider = MembershipFactory(role=Role.OWNER)
    url = reverse("jobs:job-detail", args=[outsider.team.slug, job.pk])
    assert login(outsider).get(url).status_code == 404


@pytest.mark.parametrize("finished", [False, True])
def test_the_job_page_costs_the_same_queries_whatever_the_jobs_size(
    editor: Membership, editor_key: Key, login: Any, finished: bool
) -> None:
    client = login(editor)

    def queries_for(count: int, prefix: str) -> int:
        job = start_import(editor, editor_key, count, prefix)
        if finished:
            run_worker()
        else:
            items = list(job.items.all()[: count // 2])
            JobItem.objects.filter(pk__in=[i.pk for i in items]).update(
                state="done", finished_at=timezone.now()
            )
            Job.objects.filter(pk=job.pk).update(state="running", heartbeat_at=timezone.now())
        url = reverse("jobs:job-detail", args=[editor.team.slug, job.pk])
        client.get(url)  # warm the session and caches
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        if not finished:
            Job.objects.filter(pk=job.pk).update(state="done")
        return len(captured)

    assert queries_for(3, "Small") == queries_for(40, "Large")
