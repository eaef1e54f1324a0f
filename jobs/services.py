"""Starting, running, cancelling and resuming background jobs; the progress API task bodies use.

A job is started from a page (`start_job`): its row, one item per thing to work on, the queued
task (django-tasks-db, the same database) and the audit event commit together. A worker runs the
task, which calls `run_job(job_id, body)`: the job is claimed, `body(run)` works through
`run.pending()` and reports each item with `run.record_item(...)`; between items it asks
`run.should_stop()`, which also writes the heartbeat and sees a cancel request.

Concurrency (two jobs, two workers, a dead worker):
- One active (queued or running) job per scope, enforced by a partial unique constraint
  (`one_active_job_per_scope`): an import holds "key:<key id>" (whatever the team), a sync
  holds "sync:<team id>". A second job on the same scope is refused with a link to the first
  (`JobBusy`), never queued behind it.
- Every run has a number (`Job.runs`); the worker's writes are conditional on "still running,
  still my run", so a worker that was declared dead and then wakes up stops at its next item
  instead of working beside the resumed run. An item is counted once: its update is
  conditional on it still being pending.
- A running job whose heartbeat is older than JOB_STALE_SECONDS is shown "interrupted" and may
  be resumed: re-queued, it works only through the items still pending.
The task bodies guard the characters themselves (see characters/bulk/).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from audit.context import audit_context
from audit.models import Outcome
from audit.services import record
from convai_admin.dbbusy import is_busy
from convai_admin.errors import DomainError, NotFound
from keys.models import ApiKey
from keys.services import refresh_usage_after_job
from teams import policy
from teams.models import Membership

from .models import Job, JobItem

logger = logging.getLogger("convai_admin.jobs")

TARGET_TYPE = "job"
# What a member needs to start (and so to resume) each kind of job.
START_ACTIONS: dict[str, str] = {
    Job.Kind.IMPORT_ALL: "character.import",
    Job.Kind.SYNC_ALL: "character.sync",
    Job.Kind.IMPORT_BUNDLE: "character.import",
}
# How often a running job writes its heartbeat and looks for a cancel request, at most.
CHECK_EVERY_SECONDS = 0.5


class _Enqueueable(Protocol):
    """A django-tasks Task taking the job's ID (characters/bulk/, bundles/ define them)."""

    def enqueue(self, job_id: int) -> Any: ...


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


def _record(
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
            _record(
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
    orphans = []
    for row in running:
        key = _task_key(row.pk)
        if key in live or row.started_at is None:
            continue
        cutoff = job_cutoff if key in job_tasks else other_cutoff
        if row.started_at < cutoff:
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
    return f"{jobs} stale job(s) marked interrupted, {len(orphans)} lost task row(s) failed"


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
    task: _Enqueueable,
    items: Sequence[NewItem],
    api_key: ApiKey | None = None,
    params: dict[str, Any] | None = None,
    starter: Any = None,
    event: str = "job.start",
) -> Job:
    """Create the job and its items, queue its task and audit it (`event`, by the actor), all
    or nothing. Raises JobBusy when another job holds the scope (recorded as refused). The job
    runs as `starter` (default: the actor), with the starter's keys."""
    policy.authorize(actor, START_ACTIONS[kind], event=event, target_type=TARGET_TYPE)
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
            result = task.enqueue(job.pk)
            job.task_id = str(result.id)
            job.save(update_fields=["task_id"])
            _record(
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
        _record(
            event,
            job,
            actor=actor.user,
            outcome=Outcome.FAILURE,
            details={"reason": "busy", "active_job": busy.pk if busy else None},
        )
        raise JobBusy(busy) from None
    return job


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
    now = timezone.now()
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            raise JobFinished()
        locked.cancel_requested_at = locked.cancel_requested_at or now
        locked.cancel_requested_by = actor.user
        fields = ["cancel_requested_at", "cancel_requested_by"]
        if locked.state != Job.State.RUNNING or locked.is_stale:
            locked.state = Job.State.CANCELLED
            locked.finished_at = now
            fields += ["state", "finished_at"]
        locked.save(update_fields=fields)
        _record(
            "job.cancel",
            locked,
            actor=actor.user,
            details={"state": locked.state, **counts(locked)},
        )
    return locked


def resume_job(*, actor: Membership, job_id: int, task: _Enqueueable) -> Job:
    """Queue an interrupted job again: it works through the items still pending, as its
    starter (with the starter's key). The starter or an Admin+ may resume it."""
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
            result = task.enqueue(locked.pk)
            locked.task_id = str(result.id)
            locked.save(update_fields=["task_id"])
            _record(
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


# Kinds whose failed items can be tried again as a new job (a bundle's upload is gone once its
# import finished: upload it again instead).
RETRYABLE = (Job.Kind.IMPORT_ALL, Job.Kind.SYNC_ALL)


def retry_failed(*, actor: Membership, job_id: int, task: _Enqueueable) -> Job:
    """A new job over exactly the failed items of a finished job, run as the first job's
    starter (with the starter's key). The starter or an Admin+ may ask for it."""
    job = _job(actor, job_id)
    policy.authorize(actor, "job.retry", job, target_type=TARGET_TYPE, target_id=job.pk)
    if job.kind not in RETRYABLE:
        raise JobError(
            "A bundle import cannot be retried from here: upload the bundle again; what is "
            "already imported is skipped."
        )
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
        task=task,
        items=[NewItem(item.label, item.target_id, item.local_id) for item in failed],
        api_key=job.api_key,
        params={**job.params, "retry_of": job.pk},
        starter=starter,
        event="job.retry",
    )


def counts(job: Job) -> dict[str, int]:
    return {"total": job.total, "done": job.done, "skipped": job.skipped, "failed": job.failed}


# --- Running (inside the worker) ----------------------------------------------------------------


_COUNTERS = {
    JobItem.State.DONE: "done",
    JobItem.State.SKIPPED: "skipped",
    JobItem.State.FAILED: "failed",
}


class LostJob(Exception):
    """This run no longer owns the job (declared dead and resumed, or cancelled while queued)."""


@dataclass
class JobRun:
    """What a task body gets: the job, the acting membership, and the progress API."""

    job: Job
    actor: Membership
    number: int
    cancelled: bool = False
    lost: bool = False
    # Fairness: with `slicing`, the run stops taking items after JOB_SLICE_ITEMS results or
    # JOB_SLICE_SECONDS, and run_job queues the job again behind the other jobs (`sliced`).
    slicing: bool = False
    sliced: bool = False
    _checked: float = field(default_factory=time.monotonic)
    _started: float = field(default_factory=time.monotonic)
    _recorded: int = 0
    _unflushed: dict[str, int] = field(default_factory=dict)

    def pending(self) -> QuerySet[JobItem]:
        """The items still to do, in order (a resumed job skips what it already did)."""
        return self.job.items.filter(state=JobItem.State.PENDING).order_by("ordinal")

    def _mine(self) -> QuerySet[Job]:
        return Job.objects.filter(pk=self.job.pk, state=Job.State.RUNNING, runs=self.number)

    def record_item(
        self, item: JobItem, state: str, message: str = "", *, local_id: int | None = None
    ) -> bool:
        """Store one item's result; False if it was already stored (by an earlier run) or
        this run lost the job (then `lost` is set).

        Inside a transaction (a batch of results: see jobs.pool.run_pooled) the job's
        totals are written by `flush()` at its end, once; outside one, at once."""
        if self.lost:
            return False
        counter = _COUNTERS[JobItem.State(state)]
        values: dict[str, Any] = {
            "state": state,
            "message": message[:2000],
            "finished_at": timezone.now(),
        }
        if local_id is not None:
            values["local_id"] = local_id
        alone = not transaction.get_connection().in_atomic_block
        try:
            with transaction.atomic():
                pending = JobItem.objects.filter(pk=item.pk, state=JobItem.State.PENDING)
                if not pending.update(**values):
                    return False
                self._unflushed[counter] = self._unflushed.get(counter, 0) + 1
                if alone:
                    self.flush()
        except LostJob:
            return False
        item.state, item.message = state, values["message"]
        self._recorded += 1
        return True

    def flush(self) -> None:
        """Add the results stored since the last flush to the job's totals, with a heartbeat.
        Raises LostJob (and sets `lost`) when another run owns the job now: the caller's
        transaction must roll back."""
        counts = dict(self._unflushed)
        self._unflushed.clear()
        increments = {name: F(name) + number for name, number in counts.items()}
        if not self._mine().update(heartbeat_at=timezone.now(), **increments):
            self.lost = True
            raise LostJob()
        for name, number in counts.items():
            setattr(self.job, name, getattr(self.job, name) + number)

    def discard(self) -> None:
        """Forget the unflushed results (their transaction rolled back)."""
        self._unflushed.clear()

    def should_stop(self, *, force: bool = False) -> bool:
        """Write the heartbeat and look for a cancel request, at most every half second.
        True when the body should stop taking new items (cancelled, or the job was lost)."""
        if self.cancelled or self.lost or self.sliced:
            return True
        now = time.monotonic()
        if self.slicing and (
            self._recorded >= settings.JOB_SLICE_ITEMS
            or now - self._started >= settings.JOB_SLICE_SECONDS
        ):
            self.sliced = True
            return True
        if not force and now - self._checked < CHECK_EVERY_SECONDS:
            return False
        self._checked = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            self.lost = True
            return True
        cancel = Job.objects.filter(pk=self.job.pk).values_list("cancel_requested_at", flat=True)
        if cancel.first() is not None:
            self.cancelled = True
        return self.cancelled


def _claim(job_id: int) -> tuple[Job, int] | None:
    with transaction.atomic():
        job = (
            # Lock the job row only: PostgreSQL refuses FOR UPDATE on the nullable side of the
            # outer joins that select_related makes for created_by and api_key.
            Job.objects.select_for_update(of=("self",))
            .select_related("team", "created_by", "api_key")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.state != Job.State.QUEUED:
            return None  # cancelled before it started, or already run
        now = timezone.now()
        job.state = Job.State.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.runs += 1
        job.save(update_fields=["state", "started_at", "heartbeat_at", "runs"])
        return job, job.runs


def _finish(run: JobRun, state: str, message: str = "") -> None:
    now = timezone.now()
    job = run.job
    with transaction.atomic():
        if not run._mine().update(state=state, finished_at=now, heartbeat_at=now, message=message):
            return  # another run owns it now: it will finish it
        job.refresh_from_db(fields=["done", "skipped", "failed", "cancel_requested_at"])
        job.state, job.finished_at, job.message = state, now, message
        _record(
            "job.finish",
            job,
            actor=job.created_by,
            outcome=Outcome.FAILURE if state == Job.State.FAILED else Outcome.SUCCESS,
            details={
                "state": state,
                **counts(job),
                "duration_ms": round((now - (job.started_at or now)).total_seconds() * 1000),
                **({"message": message} if message else {}),
            },
        )
    _refresh_usage_of(job)


def _refresh_usage_of(job: Job) -> None:
    """The job spent quota: refresh the account usage of the keys it called Convai with (the
    import's key, or the keys its characters are bound to). Never fails the job."""
    local_ids = job.items.filter(local_id__isnull=False).values("local_id")
    key_ids = set(ApiKey.objects.filter(characters__pk__in=local_ids).values_list("pk", flat=True))
    if job.api_key_id is not None:
        key_ids.add(job.api_key_id)
    if key_ids:
        summary = refresh_usage_after_job(api_key_ids=key_ids)
        logger.info("job #%s: %s", job.pk, summary)


def _requeue(run: JobRun, task: _Enqueueable) -> bool:
    """Put a job whose slice is spent back in the queue, behind the jobs queued meanwhile (so
    one team's long job and another team's short one take turns on a worker). False when the
    run lost the job or a cancel was asked for (then the job is finished, not requeued)."""
    with transaction.atomic():
        if (
            not run._mine()
            .filter(cancel_requested_at__isnull=True)
            .update(state=Job.State.QUEUED, heartbeat_at=timezone.now())
        ):
            return False
        result = task.enqueue(run.job.pk)
        Job.objects.filter(pk=run.job.pk).update(task_id=str(result.id))
    return True


def run_job(
    job_id: int, body: Callable[[JobRun], None], *, task: _Enqueueable | None = None
) -> str:
    """Claim the job, run `body` with the progress API, and finish it: done, cancelled, or
    failed with a message (a body raising JobError says why; anything else is logged). Returns
    the final state (what the task result stores).

    With `task` (the task that runs this job), the run works one slice (JOB_SLICE_ITEMS items or
    JOB_SLICE_SECONDS) and queues `task` again for the rest ("requeued")."""
    claimed = _claim(job_id)
    if claimed is None:
        return "skipped"
    job, number = claimed
    with audit_context(origin=job.origin):
        actor = (
            Membership.objects.select_related("team", "user")
            .filter(team_id=job.team_id, user=job.created_by)
            .first()
            if job.created_by is not None
            else None
        )
        run = (
            JobRun(job=job, actor=actor, number=number, slicing=task is not None)
            if actor is not None
            else None
        )
        if run is None:
            stub = JobRun(job=job, actor=Membership(team=job.team), number=number)
            _finish(stub, Job.State.FAILED, "The member who started this job left the team.")
            return Job.State.FAILED
        try:
            body(run)
        except DomainError as error:  # JobError, or a refusal the body did not expect
            _finish(run, Job.State.FAILED, error.message)
            return Job.State.FAILED
        except Exception as error:
            if is_busy(error) and task is not None:
                # A lock held too long by someone else (the batch rolled back, its items are
                # still pending): take a turn later instead of failing the job.
                run.discard()
                logger.warning("Job %s: database busy, queued again", job_id)
                with contextlib.suppress(Exception):
                    if _requeue(run, task):
                        return "requeued"
            logger.exception("Job %s stopped by an unexpected error", job_id)
            _finish(run, Job.State.FAILED, "The job stopped because of an unexpected error.")
            raise
        if run._unflushed:
            with contextlib.suppress(LostJob):
                run.flush()
        if run.lost:
            return "lost"
        if run.sliced and task is not None and not run.cancelled and run.pending().exists():
            if _requeue(run, task):
                return "requeued"
            if not run._mine().exists():
                return "lost"
            run.cancelled = True
        state = Job.State.CANCELLED if run.cancelled and run.pending().exists() else Job.State.DONE
        _finish(run, state)
        return state


def items_for(job: Job, states: Iterable[str] | None = None) -> QuerySet[JobItem]:
    items = job.items.all()
    if states is not None:
        items = items.filter(state__in=list(states))
    return items.order_by("ordinal")
