"""A job kind is one registration (jobs/registry.py): the engine starts, runs, resumes and
retries a kind it knows only from its registration, and `Job.kind` offers what is registered.
The worker process is tuned once, when it starts, never by the job it runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.urls import reverse
from django_tasks import task

from audit.models import AuditEvent
from characters import job_kinds
from characters.bulk import importing
from jobs import pool, registry, running, worker
from jobs import services as jobs
from jobs.models import Job, JobItem
from teams.models import Membership, Role
from tests.factories import MembershipFactory
from tests.jobs.support import fresh, run_worker

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[float] = []


def _echo_body(run: running.JobRun) -> None:
    """Through the pooled engine: items named "bad …" fail, the others are done."""

    def fetch(label: str) -> str:
        SEEN.append(sys.getswitchinterval())
        return label

    def handle(item: JobItem, fetched: pool.Fetched) -> None:
        SEEN.append(sys.getswitchinterval())
        failed = str(fetched.value).startswith("bad")
        state = JobItem.State.FAILED if failed else JobItem.State.DONE
        run.record_item(item, state, "Refused." if failed else "Echoed.")

    work = ((item, partial(fetch, item.label)) for item in list(run.pending()))
    pool.run_pooled(run, work, handle)


@task()
def echo(job_id: int) -> str:
    return running.run_job(job_id, _echo_body, task=echo)


ECHO = registry.JobKind(
    name="test_echo",
    label="Echo for the test",
    task=echo,
    start_action="character.sync",
)


@pytest.fixture
def echo_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[registry.JobKind]:
    """The test kind, registered for this test only."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    yield registry.register(ECHO)


@pytest.fixture
def editor() -> Membership:
    return MembershipFactory(role=Role.EDITOR)


def test_a_new_kind_is_started_run_and_retried_from_its_registration_alone(
    echo_kind: registry.JobKind, editor: Membership, client: Any
) -> None:
    job = jobs.start_job(
        actor=editor,
        kind=echo_kind.name,
        scope=f"echo:{editor.team_id}",
        items=[jobs.NewItem("one"), jobs.NewItem("bad two"), jobs.NewItem("three")],
    )
    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.failed) == (Job.State.DONE, 2, 1)
    assert job.get_kind_display() == "Echo for the test"
    start = AuditEvent.objects.get(action="job.start", target_id=str(job.pk))
    assert start.target_label == f"Echo for the test #{job.pk}"

    # Its page offers the retry (the kind did not refuse it), and the retry queues its task.
    client.force_login(editor.user)
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    assert page.status_code == 200 and "Retry the 1 failed item" in page.content.decode()
    retry = jobs.retry_failed(actor=editor, job_id=job.pk)
    assert retry.kind == "test_echo" and retry.total == 1
    run_worker()
    assert (fresh(retry).state, fresh(retry).failed) == (Job.State.DONE, 1)


def test_a_kind_that_cannot_retry_says_why(
    monkeypatch: pytest.MonkeyPatch, editor: Membership
) -> None:
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    kind = registry.register(
        registry.JobKind(
            name="test_once",
            label="Once",
            task=echo,
            start_action="character.sync",
            no_retry="Start it again instead.",
        )
    )
    job = jobs.start_job(
        actor=editor, kind=kind.name, scope="once", items=[jobs.NewItem("bad one")]
    )
    run_worker()
    assert fresh(job).failed == 1 and not jobs.may_retry_now(fresh(job))
    with pytest.raises(jobs.JobError, match="Start it again instead"):
        jobs.retry_failed(actor=editor, job_id=job.pk)


def test_a_kind_needs_its_start_action(echo_kind: registry.JobKind) -> None:
    """The registration's start action is what the policy is asked: a Viewer may not sync."""
    viewer = MembershipFactory(role=Role.VIEWER)
    with pytest.raises(jobs.policy.NotAllowed):
        jobs.start_job(actor=viewer, kind=echo_kind.name, scope="v", items=[jobs.NewItem("x")])
    assert not Job.objects.exists()


def test_one_name_cannot_be_registered_as_two_kinds(echo_kind: registry.JobKind) -> None:
    registry.register(echo_kind)  # the same registration again (a second ready()) is harmless
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        registry.register(registry.JobKind("test_echo", "Other", echo, "character.import"))


def test_job_kind_choices_and_start_pages_come_from_the_registrations() -> None:
    choices = dict(Job._meta.get_field("kind").choices or [])
    assert choices == {kind.name: kind.label for kind in job_kinds.KINDS}
    assert registry.get(importing.IMPORT_ALL).task is importing.import_all
    assert [page.name for page in registry.start_pages()] == ["import-all", "sync-all"]
    assert reverse("jobs:import-all", args=["t1"]) == "/t/t1/characters/import-all/"
    assert reverse("jobs:sync-all", args=["t1"]) == "/t/t1/characters/sync-all/"


@pytest.fixture
def switch_interval() -> Iterator[float]:
    """This process's switch interval, restored after the test."""
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_running_a_job_leaves_the_switch_interval_alone(
    echo_kind: registry.JobKind, editor: Membership, switch_interval: float
) -> None:
    SEEN.clear()
    jobs.start_job(actor=editor, kind=echo_kind.name, scope="s", items=[jobs.NewItem("a")])
    run_worker()
    seen = list(SEEN)
    assert seen == [switch_interval, switch_interval]
    assert sys.getswitchinterval() == switch_interval


def test_the_worker_command_tunes_its_process_once(switch_interval: float) -> None:
    assert switch_interval != worker.SWITCH_INTERVAL
    call_command("run_worker", batch=True, startup_delay=False, reload=False, verbosity=0)
    assert sys.getswitchinterval() == pytest.approx(worker.SWITCH_INTERVAL)


def test_a_job_whose_kind_is_no_longer_registered_still_shows(
    editor: Membership, client: Any
) -> None:
    job = Job.objects.create(team=editor.team, kind="gone", scope="g", state=Job.State.FAILED)
    JobItem.objects.create(job=job, ordinal=1, label="Left", state=JobItem.State.FAILED)
    client.force_login(editor.user)
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    assert page.status_code == 200 and f"gone #{job.pk}" in page.content.decode()
    assert "Retry" not in page.content.decode()
