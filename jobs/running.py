"""Running a job inside the worker: the progress API task bodies use.

A worker runs the job's task, which calls `run_job(job_id, body)`: the job is claimed, `body(run)`
works through `run.pending()` and reports each item with `run.record_item(...)`; between items
it asks `run.should_stop()`, which also writes the heartbeat and sees a cancel request.

Every run has a number (`Job.runs`); the worker's writes are conditional on "still running,
still my run", so a worker that was declared dead and then wakes up stops at its next item
instead of working beside the resumed run. An item is counted once: its update is conditional
on it still being pending. Starting, cancelling, resuming: jobs/services.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from audit.context import audit_context
from audit.models import Outcome
from convai_admin.dbbusy import is_busy
from convai_admin.errors import DomainError
from keys.services import refresh_usage_after_job
from teams.models import Membership

from . import queue, registry
from .models import Job, JobItem
from .registry import Enqueueable
from .services import counts, record_job_event

logger = logging.getLogger("convai_admin.jobs")

# How often a running job writes its heartbeat and looks for a cancel request, at most.
CHECK_EVERY_SECONDS = 0.5

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

        Inside a transaction (a batch of results: e.g. the pooled engine) the job's
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
        record_job_event(
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
    job's key, and those its kind says its items used). Never fails the job."""
    keys_spent = registry.get(job.kind).keys_spent
    key_ids = set(keys_spent(job)) if keys_spent is not None else set()
    if job.api_key_id is not None:
        key_ids.add(job.api_key_id)
    if key_ids:
        summary = refresh_usage_after_job(api_key_ids=key_ids)
        logger.info("job #%s: %s", job.pk, summary)


def _requeue(run: JobRun, task: Enqueueable) -> bool:
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
        queue.enqueue(
            task,
            run.job.pk,
            then=lambda task_id: Job.objects.filter(pk=run.job.pk).update(task_id=task_id),
        )
    return True


def run_job(job_id: int, body: Callable[[JobRun], None], *, task: Enqueueable | None = None) -> str:
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
