"""Game builds: the team's token broker (docs/builds.md).

A build is what a studio ships (a Unity, Unreal or web game). It holds a build credential (only
its SHA-256 is stored, with a short public prefix for lookup), the team member's key it mints
Convai auth tokens with, where it may be called from, and its limits. The tokens it mints are
kept only encrypted and only until they expire, so that revoking the build can revoke them at
Convai too."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class PlayerAuth(models.TextChoices):
    """How a build's players are identified (docs/builds.md, "Per-player mode")."""

    NONE = "", "No per-player check (the build credential alone)"
    HS256 = "HS256", "HS256: a shared secret we generate"
    RS256 = "RS256", "RS256: your RSA public key"
    ES256 = "ES256", "ES256: your EC P-256 public key"


class BuildQuerySet(models.QuerySet["Build"]):
    def live(self) -> BuildQuerySet:
        """Not revoked (an expired build is still shown, and refused at the endpoint)."""
        return self.filter(revoked_at__isnull=True)


class Build(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="builds")
    name = models.CharField(max_length=80)
    # The key every token is minted with. SET_NULL: a key row never goes while its owner
    # exists (keys are revoked, not deleted); a deleted account leaves the build keyless.
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, on_delete=models.SET_NULL, related_name="builds"
    )
    # Exact origins ("https://game.example.com") a WebGL build may call from.
    allowed_origins = models.JSONField(default=list, blank=True)
    burst_per_minute = models.PositiveIntegerField(default=30)
    per_hour = models.PositiveIntegerField(default=600)
    expires_at = models.DateTimeField(null=True, blank=True)

    # The credential: "cvb_<prefix>_<secret>", shown once. Lookup by prefix, then a
    # constant-time comparison of SHA-256 digests (the secret has 256 random bits).
    credential_prefix = models.CharField(max_length=16, unique=True)
    credential_hash = models.CharField(max_length=64)
    # The credential before the last rotation, accepted until `previous_valid_until`.
    previous_prefix = models.CharField(max_length=16, blank=True, default="", db_index=True)
    previous_hash = models.CharField(max_length=64, blank=True, default="")
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    player_auth = models.CharField(
        max_length=5, choices=PlayerAuth.choices, blank=True, default=PlayerAuth.NONE
    )
    # HS256: the shared secret, encrypted (keys.crypto) — it must be read to verify.
    player_secret_ciphertext = models.TextField(blank=True, default="")
    # RS256 / ES256: the studio's public key (PEM); not a secret.
    player_public_key = models.TextField(blank=True, default="")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = BuildQuerySet.as_manager()

    class Meta:
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret_context(self) -> bytes:
        """Associated data of the HS256 secret's ciphertext: bound to this build."""
        return f"convai-admin:build-player-secret:{self.pk}".encode()


class MintedToken(models.Model):
    """A token the build handed out, kept (encrypted, bound to its build) only so that
    revoking the build can revoke it at Convai; deleted once revoked or expired.

    It outlives its build when the team is deleted (`build` SET_NULL): the tokens are then
    revoked at Convai through `api_key`, the key that minted them, by the periodic tidy-up.
    `build_ref` keeps the build's ID for the ciphertext's context and the audit event."""

    build = models.ForeignKey(
        Build, null=True, on_delete=models.SET_NULL, related_name="minted_tokens"
    )
    build_ref = models.UUIDField()
    # SET_NULL: a key row never goes while its owner exists (keys are revoked, not deleted).
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    ciphertext = models.TextField()
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"token of build {self.build_ref}"

    @property
    def encryption_context(self) -> bytes:
        return f"convai-admin:build-token:{self.build_ref}".encode()


class Counter(models.Model):
    """One fixed window's count for one scope ("build:<id>:minute", "team:<id>:hour", ...).
    In the database so that every app server counts the same requests; incremented with a
    conditional UPSERT (builds.limits), so concurrent requests can never pass a limit together."""

    scope = models.CharField(max_length=80)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "window_start"], name="builds_counter_window")
        ]

    def __str__(self) -> str:
        return f"{self.scope} @ {self.window_start}: {self.count}"
