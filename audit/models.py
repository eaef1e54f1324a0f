"""The append-only, hash-chained audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"
    # A write whose result Convai never told us (timeout): it may or may not have happened.
    UNKNOWN = "unknown", "Unknown"


class AuditChain(models.Model):
    """The head of one chain (a team's, or the install-wide one for events with no team).

    Locked while an event is appended so that sequence numbers and hashes stay linear."""

    scope = models.CharField(max_length=40, unique=True)
    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    # The last checkpoint written for this chain (every AUDIT_CHECKPOINT_EVERY events, and
    # at least once a day while events arrive).
    checkpoint_seq = models.BigIntegerField(default=0)
    checkpoint_at = models.DateTimeField(null=True, blank=True)
    # What the review page offers as filters, kept here so it never scans the event table:
    # every action name seen in this chain, and every actor (user ID -> latest name).
    actions = models.JSONField(default=list, blank=True)
    actors = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.scope} @ {self.seq}"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: object) -> int:
        raise TypeError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    team = models.ForeignKey(
        "teams.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # "web", "command rotate_encryption_keys", "task import_all #12": where the action ran.
    origin = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    details = models.JSONField(default=dict, blank=True)
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # The audit key (CONVAI_ADMIN_AUDIT_KEYS) whose HMAC sealed this event; never the key.
    key_id = models.CharField(max_length=40, default="", blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq_unique")
        ]
        indexes = [
            models.Index(fields=["team", "-id"], name="audit_team_recent"),
            # The review page pages by id (keyset) inside a team; each filter it offers has an
            # index that reads its rows newest first without sorting.
            models.Index(fields=["team", "actor", "action", "-id"], name="audit_team_actor"),
            models.Index(fields=["team", "action", "-id"], name="audit_team_action"),
            models.Index(
                fields=["team", "target_type", "target_id", "-id"], name="audit_team_target"
            ),
            models.Index(fields=["team", "outcome", "-id"], name="audit_team_outcome"),
            # Date bounds become id bounds through this one (created_at rises with id in a chain).
            models.Index(fields=["team", "created_at"], name="audit_team_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only.")


class CheckpointKind(models.TextChoices):
    PERIODIC = "periodic", "Every N events"
    DAILY = "daily", "Daily"
    MANUAL = "manual", "Requested"
    PRUNE = "prune", "Prune anchor"
    SEAL = "seal", "Chain sealed (team deleted)"


class AuditCheckpoint(models.Model):
    """A chain head at a moment, sealed with the audit key. The copy that counts is the one in
    the server log (logger "convai_admin.audit.checkpoint"), kept outside the database; this
    row lets the Verify button compare against it, and a `prune` row anchors what remains of
    a chain after old events were deleted."""

    created_at = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=CheckpointKind.choices)
    scope = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=40)
    mac = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["scope", "kind", "-seq"], name="audit_ckpt_scope")]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope} @ {self.seq}"
