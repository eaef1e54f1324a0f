"""Starting, cancelling, resuming and retrying background jobs, and finding the dead ones.
Running them (inside the worker, the progress API task bodies use): jobs/running.py.

A job is started from a page (`start_job`): its row, one item per thing to work on, the queued
task of its kind (jobs/registry.py; django-tasks-db, the same database) and the audit event
commit together.

Concurrency (two jobs, two workers, a dead worker):
- One active (queued or running) job per scope, enforced by a partial unique constraint
  (`one_active_job_per_scope`): an import holds "key:<key id>" (whatever the team), a sync
  holds "sync:<team id>". A second job on the same scope is refused with a link to the first
  (`JobBusy`), never queued behind it.
- A running job whose heartbeat is older than JOB_STALE_SECONDS is shown "interrupted" and may
  be resumed: re-queued, it works only through the items still pending (see jobs/running.py
  for how a run that wakes up late stops).
The task bodies guard what they work on themselves (e.g. characters/bulk/).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.models import Outcome
from audit.services import record
from convai_admin.errors import DomainError, NotFound
from keys.models import ApiKey
from teams import policy
from teams.models import Membership, Team

from . import queue, registry
from .models import Job, JobItem, WorkerHeartbeat
from .registry import Enqueueable
from .worker import dead_workers

if TYPE_CHECKING:
    from accounts.models import User  # a type hint only: jobs does not depend on accounts

TARGET_TYPE = "job"


# --- Errors ------------------------------------------------------------------------------------


class JobError(DomainError):
    """A job could not be started, cancelled or resumed; the message says why."""


class JobNotFound(NotFound):
    default_message = "That job does not exist in this team."


class JobBusy(JobError):
    """Another job already works on this key or these characters."""

    def __init__(self, active: Job | None) -> None:
        self.active = active
        what = "this key" if active is None or active.scope.startswith("key:") else "them"
        who = ""
        if active is not None and active.created_by is not None:
            who = f", started by {active.created_by.display_name}"
        number = f" (#{active.pk}{who})" if active is not None else ""
        super().__init__(
            f"Another job is already working on {what}{number}. Wait for it to finish or "
            "cancel it, then start again."
        )


class JobNotResumable(JobError):
    default_message = "Only an interrupted job can be resumed."


class JobFinished(JobError):
    default_message = "This job has already finished."


# --- Starting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewItem:
    label: str
    target_id: str = ""
    local_id: int | None = None


def key_scope(api_key: ApiKey) -> str:
    return f"key:{api_key.pk}"


def sync_scope(team_id: int) -> str:
    return f"sync:{team_id}"


def _key_label(api_key: ApiKey | None) -> str:
    return f"{api_key.label} (…{api_key.last_four})" if api_key is not None else ""


def record_job_event(
    action: str,
    job: Job,
    *,
    actor: Any = None,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> None:
    record(
        action,
        actor=actor,
        team=job.team,
        target_type=TARGET_TYPE,
        target_id=job.pk or "",
        target_label=f"{job.get_kind_display()} #{job.pk}" if job.pk else job.get_kind_display(),
        outcome=outcome,
        details={"kind": job.kind, **(details or {})},
    )


def active_job(scope: str) -> Job | None:
    return (
        Job.objects.select_related("created_by")
        .filter(scope=scope, state__in=Job.ACTIVE_STATES)
        .first()
    )


def reap_stale(scope: str | None = None, *, team_id: int | None = None) -> int:
    """Store "interrupted" for running jobs whose worker stopped writing (frees their scope),
    each with a `job.worker_lost` event (system actor) and its task row failed, together."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
    stale = Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=cutoff)
    if scope is not None:
        stale = stale.filter(scope=scope)
    if team_id is not None:
        stale = stale.filter(team_id=team_id)
    reaped = 0
    for job in stale.select_related("team"):
        with transaction.atomic():
            # Conditional on what was read: a worker that wrote meanwhile keeps its job.
            if not Job.objects.filter(
                pk=job.pk, state=Job.State.RUNNING, runs=job.runs, heartbeat_at=job.heartbeat_at
            ).update(state=Job.State.INTERRUPTED):
                continue
            job.state = Job.State.INTERRUPTED
            workers = _fail_task_rows([job.task_id], WORKER_LOST)
            record_job_event(
                "job.worker_lost",
                job,
                outcome=Outcome.FAILURE,
                details={
                    "state": Job.State.INTERRUPTED,
                    "run": job.runs,
                    "last_heartbeat": job.heartbeat_at.isoformat() if job.heartbeat_at else "",
                    "workers": workers,
                    **counts(job),
                },
            )
        reaped += 1
    return reaped


WORKER_LOST = (
    "The worker running this task stopped (killed, or lost its database connection) before "
    "the task finished; the periodic sweep marked it failed."
)


def _fail_task_rows(task_ids: Iterable[str], why: str) -> list[str]:
    """Mark the django-tasks rows still "running" failed (their worker is gone), the way the
    worker would have; returns the IDs of the workers that had them."""
    ids = []
    for value in task_ids:
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(str(value)))
    if not ids:
        return []
    rows = DBTaskResult.objects.filter(pk__in=ids, status=TaskResultStatus.RUNNING)
    workers = sorted({worker for row in rows for worker in row.worker_ids})
    rows.update(
        status=TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        exception_class_path=f"{__name__}.WorkerLost",
        traceback=why,
        return_value=None,
    )
    return workers


class WorkerLost(Exception):
    """What a task row left running by a dead worker is failed with (its exception path)."""


def sweep_stale() -> str:
    """Periodic (jobs.periodic): jobs whose worker died become "interrupted" (with Resume) and
    their task rows failed; other task rows left running by a dead worker are failed too."""
    jobs = reap_stale()
    now = timezone.now()
    running = list(
        DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).only(
            "id", "started_at", "task_path", "worker_ids"
        )
    )
    names = {form for row in running for form in (str(row.pk), uuid.UUID(str(row.pk)).hex)}
    owners = Job.objects.filter(task_id__in=names).values_list("task_id", "state")
    live = {_task_key(task) for task, state in owners if state in Job.ACTIVE_STATES}
    job_tasks = {_task_key(task) for task, _ in owners}
    job_cutoff = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    other_cutoff = now - timedelta(seconds=settings.TASK_STALE_SECONDS)
    # Workers whose heartbeat stopped: what they were running is lost now, whatever its age.
    dead = dict(dead_workers().values_list("worker_id", "last_seen"))
    orphans = []
    for row in running:
        key = _task_key(row.pk)
        if key in live or row.started_at is None:
            continue
        cutoff = job_cutoff if key in job_tasks else other_cutoff
        runner = row.worker_ids[-1] if row.worker_ids else None
        if row.started_at < cutoff or runner in dead:
            orphans.append(row)
    for row in orphans:
        with transaction.atomic():
            if not _fail_task_rows([str(row.pk)], WORKER_LOST):
                continue
            record(
                "task.worker_lost",
                target_type="task",
                target_id=str(row.pk),
                target_label=row.task_path.rsplit(".", 1)[-1][:200],
                outcome=Outcome.FAILURE,
                details={"task": row.task_path, "workers": list(row.worker_ids)},
            )
    # Forget the dead workers (after failing their rows: a worker that comes back to life
    # writes its row again).
    forgotten = WorkerHeartbeat.objects.filter(worker_id__in=dead, last_seen__in=dead.values())
    gone, _ = forgotten.delete()
    return (
        f"{jobs} stale job(s) marked interrupted, {len(orphans)} lost task row(s) failed, "
        f"{gone} dead worker(s) forgotten"
    )


def _task_key(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def start_job(
    *,
    actor: Membership,
    kind: str,
    scope: str,
    items: Sequence[NewItem],
    api_key: ApiKey | None = None,
    params: dict[str, Any] | None = None,
    starter: Any = None,
    event: str = "job.start",
) -> Job:
    """Create the job and its items, queue its kind's task and audit it (`event`, by the
    actor), all or nothing. Raises JobBusy when another job holds the scope (recorded as
    refused). The job runs as `starter` (default: the actor), with the starter's keys."""
    job_kind = registry.get(kind)
    policy.authorize(actor, job_kind.start_action, event=event, target_type=TARGET_TYPE)
    job = Job(
        team=actor.team,
        kind=kind,
        scope=scope,
        api_key=api_key,
        key_label=_key_label(api_key),
        created_by=starter or actor.user,
        total=len(items),
        params=params or {},
    )
    try:
        with transaction.atomic():
            reap_stale(scope)
            job.save(force_insert=True)
            _add_items(job, items)
            _enqueue(job, job_kind.task)
            record_job_event(
                event,
                job,
                actor=actor.user,
                details={
                    "items": job.total,
                    "key_used": job.key_label,
                    "concurrency": settings.CONVAI_JOB_CONCURRENCY,
                    **(params or {}),
                },
            )
    except IntegrityError:
        busy = active_job(scope)
        job.pk = None
        record_job_event(
            event,
            job,
            actor=actor.user,
            outcome=Outcome.FAILURE,
            details={"reason": "busy", "active_job": busy.pk if busy else None},
        )
        raise JobBusy(busy) from None
    return job


def _add_items(job: Job, items: Sequence[NewItem]) -> None:
    JobItem.objects.bulk_create(
        [
            JobItem(
                job=job,
                ordinal=number,
                label=item.label[:200],
                target_id=item.target_id,
                local_id=item.local_id,
            )
            for number, item in enumerate(items, start=1)
        ],
        batch_size=500,
    )


def _enqueue(job: Job, task: Enqueueable) -> None:
    """Queue the job's task with the caller's transaction (both or neither; jobs/queue.py)."""

    def remember(task_id: str) -> None:
        job.task_id = task_id
        Job.objects.filter(pk=job.pk).update(task_id=task_id)

    queue.enqueue(task, job.pk, then=remember)


# --- Cancelling and resuming --------------------------------------------------------------------


def _job(actor: Membership, job_id: int) -> Job:
    job = Job.objects.select_related("created_by").filter(team=actor.team, pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


def cancel_job(*, actor: Membership, job_id: int) -> Job:
    """Ask a job to stop. A queued or interrupted one stops at once; a running one stops
    between items (its worker sees the request within a second) and keeps what it did."""
    job = _job(actor, job_id)
    policy.authorize(actor, "job.cancel", job, target_type=TARGET_TYPE, target_id=job.pk)
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            raise JobFinished()
        _request_cancel(locked, user=actor.user)
    return locked


def _request_cancel(locked: Job, *, user: User, reason: str = "") -> None:
    """The cancel request on a locked, unfinished job, and its event."""
    now = timezone.now()
    locked.cancel_requested_at = locked.cancel_requested_at or now
    locked.cancel_requested_by = user
    fields = ["cancel_requested_at", "cancel_requested_by"]
    if locked.state != Job.State.RUNNING or locked.is_stale:
        locked.state = Job.State.CANCELLED
        locked.finished_at = now
        fields += ["state", "finished_at"]
    locked.save(update_fields=fields)
    record_job_event(
        "job.cancel",
        locked,
        actor=user,
        details={"state": locked.state, **counts(locked), **({"reason": reason} if reason else {})},
    )


def cancel_team_jobs(team: Team, user: User) -> int:
    """An archived team changes nothing more: its unfinished jobs are asked to stop, as by
    "Cancel" (teams.hooks' archiver, run inside the archiving's transaction). How many."""
    unfinished = (
        Job.objects.select_for_update()
        .filter(team=team)
        .exclude(state__in=Job.FINISHED_STATES)
        .order_by("pk")
    )
    jobs = list(unfinished)
    for job in jobs:
        _request_cancel(job, user=user, reason="team archived")
    return len(jobs)


def resume_job(*, actor: Membership, job_id: int) -> Job:
    """Queue an interrupted job again (its kind's task): it works through the items still
    pending, as its starter (with the starter's key). The starter or an Admin+ may resume it."""
    job = _job(actor, job_id)
    policy.authorize(actor, "job.resume", job, target_type=TARGET_TYPE, target_id=job.pk)
    try:
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=job.pk)
            if not locked.can_resume:
                raise JobNotResumable()
            locked.state = Job.State.QUEUED
            locked.message = ""
            locked.cancel_requested_at = None
            locked.save(update_fields=["state", "message", "cancel_requested_at"])
            _enqueue(locked, registry.get(locked.kind).task)
            record_job_event(
                "job.resume",
                locked,
                actor=actor.user,
                details={"pending": locked.total - locked.processed, **counts(locked)},
            )
    except IntegrityError:
        raise JobBusy(active_job(job.scope)) from None
    return locked


class NothingToRetry(JobError):
    default_message = "This job has no failed items to retry."


def may_retry_now(job: Job) -> bool:
    """The job has failed items, its kind can retry them, and it is no longer moving (the
    page offers "Retry" only then; the policy says who may)."""
    return (
        job.failed > 0
        and (kind := registry.find(job.kind)) is not None
        and kind.retryable
        and (job.is_finished or job.shown_state == Job.State.INTERRUPTED)
    )


def retry_failed(*, actor: Membership, job_id: int) -> Job:
    """A new job over exactly the failed items of a finished job, run as the first job's
    starter (with the starter's key). The starter or an Admin+ may ask for it."""
    job = _job(actor, job_id)
    policy.authorize(actor, "job.retry", job, target_type=TARGET_TYPE, target_id=job.pk)
    no_retry = registry.get(job.kind).no_retry
    if no_retry:
        raise JobError(no_retry)
    if not job.is_finished and job.shown_state != Job.State.INTERRUPTED:
        raise JobError("Wait for this job to finish (or cancel it) before retrying its failures.")
    failed = list(items_for(job, [JobItem.State.FAILED]))
    if not failed:
        raise NothingToRetry()
    starter = job.created_by
    if starter is None or not Membership.objects.filter(team=job.team, user=starter).exists():
        raise JobError("The member who started this job left the team: start a new one.")
    return start_job(
        actor=actor,
        kind=job.kind,
        scope=job.scope,
        items=[NewItem(item.label, item.target_id, item.local_id) for item in failed],
        api_key=job.api_key,
        params={**job.params, "retry_of": job.pk},
        starter=starter,
        event="job.retry",
    )


def counts(job: Job) -> dict[str, int]:
    return {"total": job.total, "done": job.done, "skipped": job.skipped, "failed": job.failed}


def items_for(job: Job, states: Iterable[str] | None = None) -> QuerySet[JobItem]:
    items = job.items.all()
    if states is not None:
        items = items.filter(state__in=list(states))
    return items.order_by("ordinal")


def remove_team_jobs(team: Team) -> int:
    """A deleted team's jobs and their items (teams.hooks' remover, run inside the team's
    deletion). A job still queued finds its row gone and stops."""
    _, removed = Job.objects.filter(team=team).delete()
    return removed.get(Job._meta.label, 0)
