"""Archiving a team stops its work in progress: an archived team is read-only, so a job that
was queued or running when an Owner archived it must not go on writing (teams.hooks'
archiver, jobs.services.cancel_team_jobs, in the archiving's transaction)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from jobs import running
from jobs.models import Job
from teams import lifecycle
from teams.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db


def _job(team: Team, state: str, n: int) -> Job:
    return Job.objects.create(team=team, kind="sync_all", scope=f"sync:{team.pk}:{n}", state=state)


def test_archiving_cancels_the_teams_unfinished_jobs_and_says_so() -> None:
    owner: Membership = MembershipFactory.create(role=Role.OWNER)
    team = owner.team
    queued = _job(team, Job.State.QUEUED, 1)
    interrupted = _job(team, Job.State.INTERRUPTED, 2)
    running_job = _job(team, Job.State.RUNNING, 3)
    Job.objects.filter(pk=running_job.pk).update(heartbeat_at=timezone.now())
    done = _job(team, Job.State.DONE, 4)
    other_team = _job(TeamFactory.create(), Job.State.QUEUED, 5)

    lifecycle.archive_team(actor=owner)

    states = dict(Job.objects.values_list("pk", "state"))
    assert states[queued.pk] == states[interrupted.pk] == Job.State.CANCELLED
    # A running job is asked to stop: its worker stops after the item it is on.
    assert states[running_job.pk] == Job.State.RUNNING
    assert Job.objects.get(pk=running_job.pk).cancel_requested_at is not None
    assert states[done.pk] == Job.State.DONE
    assert states[other_team.pk] == Job.State.QUEUED
    assert Job.objects.get(pk=other_team.pk).cancel_requested_at is None

    cancels = AuditEvent.objects.filter(action="job.cancel").order_by("id")
    assert [e.target_id for e in cancels] == [
        str(queued.pk),
        str(interrupted.pk),
        str(running_job.pk),
    ]
    assert {e.details["reason"] for e in cancels} == {"team archived"}
    assert {e.actor_id for e in cancels} == {owner.user_id}
    archived = AuditEvent.objects.get(action="team.archived")
    assert archived.details["stopped"] == {"jobs": 3}


def test_a_running_job_sees_the_archiving_as_a_cancel_request() -> None:
    """What the worker asks between items (running.JobRun.should_stop) says stop."""
    owner: Membership = MembershipFactory.create(role=Role.OWNER)
    job = _job(owner.team, Job.State.RUNNING, 1)
    Job.objects.filter(pk=job.pk).update(runs=1, heartbeat_at=timezone.now())
    run = running.JobRun(job=Job.objects.get(pk=job.pk), actor=owner, number=1)
    assert run.should_stop(force=True) is False

    lifecycle.archive_team(actor=owner)

    assert run.should_stop(force=True) is True and run.cancelled


def test_the_archive_page_says_jobs_stop(client: Client) -> None:
    owner: Membership = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    page = client.get(reverse("teams:archive", args=[owner.team.slug]))
    assert "Background jobs still queued or running are cancelled" in page.content.decode()
