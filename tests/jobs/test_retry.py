"""Jobs that fail partly: "Retry failed items" starts a new job over exactly the failed items,
run as the first job's starter; the starter or an Admin+ may ask for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from characters.bulk import importing
from characters.models import Character
from jobs import services as jobs
from jobs.models import Job, JobItem
from sandbox.models import SandboxCharacter
from teams.models import Membership, Role
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


def partly_failed(editor: Membership, key: Key) -> Job:
    """An import of 6 whose 2nd and 5th characters vanished from Convai before it ran."""
    remote = seed_remote(key, 6)
    job = importing.start_import_all(
        actor=editor, api_key_id=key.pk, convai_ids=[c.character_id for c in remote]
    )
    gone = [remote[1], remote[4]]
    rows = [
        {f.name: getattr(c, f.name) for f in SandboxCharacter._meta.fields if f.name != "id"}
        for c in gone
    ]
    SandboxCharacter.objects.filter(pk__in=[c.pk for c in gone]).delete()
    run_worker()
    job = fresh(job)
    assert (job.state, job.done, job.failed) == ("done", 4, 2)
    SandboxCharacter.objects.bulk_create([SandboxCharacter(**row) for row in rows])  # back
    return job


def test_retry_runs_exactly_the_failed_items_as_the_starter(
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    login: Callable[[Membership], Any],
) -> None:
    job = partly_failed(editor, editor_key)
    failed = set(job.items.filter(state="failed").values_list("target_id", flat=True))
    admin = make_member(Role.ADMIN)
    client = login(admin)
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    assert "Retry the 2 failed items" in page.content.decode()

    response = client.post(reverse("jobs:job-retry", args=[editor.team.slug, job.pk]))

    retry = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("jobs:job-detail", args=[editor.team.slug, retry.pk])
    assert set(retry.items.values_list("target_id", flat=True)) == failed
    assert (retry.kind, retry.api_key_id, retry.created_by) == (
        job.kind,
        job.api_key_id,
        editor.user,
    )
    event = AuditEvent.objects.get(action="job.retry")
    assert event.actor == admin.user and event.target_id == str(retry.pk)
    assert event.details["retry_of"] == job.pk and event.details["items"] == 2
    run_worker()
    retry = fresh(retry)
    assert (retry.state, retry.done, retry.failed) == ("done", 2, 0)
    assert Character.objects.filter(team=editor.team).count() == 6
    # The first job keeps its own record; the retry is its own job.
    assert fresh(job).failed == 2


def test_retry_is_refused_to_another_editor_and_when_nothing_failed(
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    login: Callable[[Membership], Any],
) -> None:
    job = partly_failed(editor, editor_key)
    other = make_member(Role.EDITOR)
    client = login(other)
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    assert "Retry the" not in page.content.decode()
    refused = client.post(reverse("jobs:job-retry", args=[editor.team.slug, job.pk]))
    assert refused.status_code == 403
    denied = AuditEvent.objects.get(action="job.retry", outcome="denied")
    assert denied.actor == other.user
    assert Job.objects.count() == 1

    JobItem.objects.filter(job=job, state="failed").update(state="done")
    Job.objects.filter(pk=job.pk).update(failed=0, done=6)
    with pytest.raises(jobs.NothingToRetry):
        jobs.retry_failed(actor=editor, job_id=job.pk)
    # Through htmx: told where to go (the job page, with the message).
    answer = login(editor).post(
        reverse("jobs:job-retry", args=[editor.team.slug, job.pk]), headers={"HX-Request": "true"}
    )
    assert answer.status_code == 204
    assert answer["HX-Redirect"] == reverse("jobs:job-detail", args=[editor.team.slug, job.pk])
    assert Job.objects.count() == 1


def test_a_running_job_is_not_retried(editor: Membership, editor_key: Key) -> None:
    remote = seed_remote(editor_key, 2)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    Job.objects.filter(pk=job.pk).update(failed=1)
    with pytest.raises(jobs.JobError, match="Wait for this job to finish"):
        jobs.retry_failed(actor=editor, job_id=job.pk)
