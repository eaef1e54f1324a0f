"""Background jobs as the dashboard keeps them: one `Job` per run of a bulk operation (import
all of a key, sync all of a team) and one `JobItem` per thing it works on.

The task queue (django-tasks-db) only says "run job 42"; everything a page shows lives here, so
a reload or a second browser sees the same state and a worker that dies leaves its finished
items behind. A job's `scope` names what it works on ("key:<uuid>" for an import, "sync:<team>"
for a sync); the database allows one active (queued or running) job per scope, so two jobs on
the same key or the same team's characters never run side by side.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import registry


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    FINISHED_STATES = (State.DONE, State.FAILED, State.CANCELLED)

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="jobs")
    # What the job does: one of the kinds registered in jobs.registry (by the app doing it).
    kind = models.CharField(max_length=20, choices=registry.kind_choices)
    scope = models.CharField(max_length=100)
    # The key an import reads with (a sync uses each character's bound key: none here).
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    key_label = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # How many times a worker picked it up (a resume adds one).
    runs = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    # Why the job as a whole stopped (key revoked, creator left the team...), for its page.
    message = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope"],
                condition=Q(state__in=["queued", "running"]),
                name="one_active_job_per_scope",
            )
        ]
        indexes = [models.Index(fields=["team", "-created_at"], name="job_team_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.state})"

    @property
    def processed(self) -> int:
        return self.done + self.skipped + self.failed

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return min(100, self.processed * 100 // self.total)

    @property
    def is_stale(self) -> bool:
        """Running, but its worker has not written for JOB_STALE_SECONDS: it died."""
        if self.state != Job.State.RUNNING:
            return False
        beat = self.heartbeat_at or self.started_at or self.created_at
        return beat < timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)

    @property
    def shown_state(self) -> str:
        """The state a page shows: a running job whose worker stopped is "interrupted"."""
        return Job.State.INTERRUPTED if self.is_stale else self.state

    @property
    def shown_state_label(self) -> str:
        return Job.State(self.shown_state).label

    @property
    def is_active(self) -> bool:
        """Still moving: queued or running with a live worker (pages poll while it is)."""
        return self.shown_state in (Job.State.QUEUED, Job.State.RUNNING)

    @property
    def is_finished(self) -> bool:
        return self.state in Job.FINISHED_STATES

    @property
    def can_resume(self) -> bool:
        return self.shown_state == Job.State.INTERRUPTED

    @property
    def can_cancel(self) -> bool:
        return self.shown_state in (Job.State.QUEUED, Job.State.RUNNING, Job.State.INTERRUPTED)

    @property
    def duration_text(self) -> str:
        """How long it ran, from its first start to its end ("4.9 s", "3 min 12 s")."""
        if self.started_at is None or self.finished_at is None:
            return ""
        seconds = max(0.0, (self.finished_at - self.started_at).total_seconds())
        if seconds < 60:
            return f"{seconds:.1f} s"
        minutes, rest = divmod(round(seconds), 60)
        return (
            f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
        )

    @property
    def origin(self) -> str:
        """The audit origin of everything the job does."""
        return f"task {self.kind} #{self.pk}"


class JobItem(models.Model):
    """One thing a job works on (a character to import or sync), in the job's order."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    ordinal = models.PositiveIntegerField()
    label = models.CharField(max_length=200)
    # What the item names remotely (a Convai character ID) and locally (a character's pk).
    target_id = models.CharField(max_length=64, blank=True)
    local_id = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    # What happened: "Imported", "Updated: name, backstory", or Convai's message on failure.
    message = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["job", "ordinal"], name="one_job_item_per_ordinal")
        ]
        indexes = [models.Index(fields=["job", "state", "ordinal"], name="job_item_state")]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.ordinal} {self.label} ({self.state})"


class PeriodicRun(models.Model):
    """The last run of one periodic function (jobs.periodic), one row per registered name.

    A scheduler claims a period by moving `last_started_at` forward with a conditional update
    ("only if it is still the value I read"), so several schedulers or workers never run the
    same function twice in one period."""

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=12, blank=True)  # queued, ok, failed
    last_summary = models.TextField(blank=True)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (last {self.last_started_at})"


class WorkerHeartbeat(models.Model):
    """One row per live task worker process (`manage.py run_worker`), written every
    WORKER_HEARTBEAT_SECONDS by a thread of the worker and deleted when it stops cleanly.

    A row not written for WORKER_STALE_SECONDS is a dead worker (killed, frozen, its machine
    gone): the readiness check (/readyz) counts only live ones, and the stale sweep
    (jobs.services.sweep_stale) fails the task rows such a worker left "running" at once
    rather than after TASK_STALE_SECONDS, then forgets the row."""

    worker_id = models.CharField(max_length=64, unique=True)  # django-tasks-db's worker ID
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["host", "pid"]

    def __str__(self) -> str:
        return f"worker {self.worker_id} ({self.host} pid {self.pid})"
