"""The sandbox's own state: remote accounts, their keys (stored as hashes only), the characters
each account owns, and the fault configuration. It lives in the database so it survives
restarts, like a real provider."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone


def _new_user_id() -> str:
    return uuid.uuid4().hex


def _new_character_id() -> str:
    return str(uuid.uuid4())


# The metric ids of the usage endpoint (api-notes.md), each with its limit and usage fields.
USAGE_METRICS: dict[str, tuple[str, str]] = {
    "interactions": ("interactions_limit", "interactions_usage"),
    "core-api": ("core_api_limit", "core_api_usage"),
    "provider_pool_1": ("provider_pool_1_limit", "provider_pool_1_usage"),
    "pixel_streaming": ("pixel_streaming_limit", "pixel_streaming_usage"),
}


def _default_renewal() -> datetime:
    return timezone.now() + timedelta(days=30)


class SandboxAccount(models.Model):
    """One remote Convai account (a "user" in Convai's payloads). Several keys may belong to it;
    characters and usage are the account's, so every key of it sees the same ones.

    Plan and quota are whatever the tests or the demo set (see the `sandbox_account` command):
    the sandbox only counts core-API calls itself, the other metrics are set by hand."""

    name = models.CharField(max_length=80, unique=True)
    email = models.EmailField(max_length=254)
    user_id = models.CharField(max_length=32, unique=True, default=_new_user_id)
    plan_name = models.CharField(max_length=80, default="Free")
    renews_at = models.DateTimeField(null=True, blank=True, default=_default_renewal)
    interactions_limit = models.PositiveBigIntegerField(default=1_000)
    interactions_usage = models.PositiveBigIntegerField(default=0)
    core_api_limit = models.PositiveBigIntegerField(default=10_000)
    core_api_usage = models.PositiveBigIntegerField(default=0)
    provider_pool_1_limit = models.PositiveBigIntegerField(default=10_000)
    provider_pool_1_usage = models.PositiveBigIntegerField(default=0)
    pixel_streaming_limit = models.PositiveBigIntegerField(default=60)
    pixel_streaming_usage = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.name


class SandboxKey(models.Model):
    """One sandbox API key of one account. Only the SHA-256 of the key is kept."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="keys")
    label = models.CharField(max_length=80)
    key_hash = models.CharField(max_length=64, unique=True)
    request_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.label


class Listing(models.TextChoices):
    UNLISTED = "unlisted"
    PUBLIC = "public"
    PRIVATE = "private"


class SandboxCharacter(models.Model):
    """A remote character, stored in the list-item shape Convai returns (plus backstory)."""

    character_id = models.CharField(max_length=36, unique=True, default=_new_character_id)
    owner = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="characters")
    character_name = models.CharField(max_length=255, db_index=True)
    voice_type = models.CharField(max_length=255)
    backstory = models.TextField()
    actions = models.JSONField(default=list)
    language_codes = models.JSONField(default=list)
    listing = models.CharField(max_length=10, choices=Listing.choices, default=Listing.UNLISTED)
    # Document names standing in for a knowledge base: only copied by a clone with KB=true.
    knowledge_base = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.character_name


class SandboxFault(models.Model):
    """Injected misbehaviour for tests and demos. `key_label` "" is the global row; any other
    value applies to every key with that label."""

    key_label = models.CharField(max_length=80, unique=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    failure_rate = models.FloatField(default=0.0)
    outage = models.BooleanField(default=False)
    rate_limit = models.BooleanField(default=False)
    retry_after = models.PositiveIntegerField(default=1)
    malformed = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(failure_rate__gte=0) & models.Q(failure_rate__lte=1),
                name="sandbox_fault_rate_between_0_and_1",
            )
        ]

    def __str__(self) -> str:
        return self.key_label or "(global)"


class SandboxToken(models.Model):
    """A short-lived auth token minted by `/user/connect` for one key (api-notes.md,
    "Short-lived tokens"). Only the SHA-256 of the token is kept, like the keys'. A token acts
    as its key on the other endpoints (header `API-AUTH-TOKEN`) until it expires or is
    revoked."""

    key = models.ForeignKey(SandboxKey, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"token of {self.key_id}"
