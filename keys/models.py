"""Personal Convai API keys: the secret exists here only as ciphertext (see keys.crypto)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def encryption_context_for(owner_id: object, pk: object) -> bytes:
    """Associated data for a key's ciphertext: binds it to its row and owner, so a value
    copied into another row (or handed to another user) does not decrypt. A function, so the
    data migrations' historical models can use it too."""
    return f"convai-admin:apikey:{owner_id}:{pk}".encode()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self) -> ApiKeyQuerySet:
        """Keys that may do Convai work: not revoked, and verified (a key saved unverified
        waits for its owner's "Verify"). The one "key usable" rule; whether a character's
        bound key still serves its team (its owner a member) is characters' question."""
        return self.filter(revoked_at__isnull=True, verified_at__isnull=False)


class ApiKey(models.Model):
    """A member's own Convai API key. The secret is stored only as AES-256-GCM ciphertext
    (see keys.crypto) bound to this row and its owner; revoking wipes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    label = models.CharField(max_length=80)
    last_four = models.CharField(max_length=4)
    ciphertext = models.TextField(blank=True, default="")
    encryption_key_id = models.CharField(max_length=40, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # HMAC-SHA256 of the key (keys.crypto.fingerprint): finds "the same key again" without
    # decrypting every key. Wiped on revoke, like the ciphertext; "" = not known (a row the
    # backfill could not read).
    fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)

    # The Convai account the key belongs to, as `/user/user-api-usage` last named it (never
    # the key itself). Empty until a check could read it: the account is then "unknown".
    account_name = models.CharField(max_length=200, blank=True, default="")
    account_email = models.CharField(max_length=254, blank=True, default="")
    # The identity keys are grouped by: the lower-cased email, else the name ("" = unknown).
    convai_account = models.CharField(max_length=254, blank=True, default="", db_index=True)
    plan_name = models.CharField(max_length=120, blank=True, default="")
    plan_renews_at = models.DateTimeField(null=True, blank=True)
    # {metric id: {"limit": number | None, "usage": number | None}} for every metric Convai
    # sent (interactions, core-api, provider_pool_1, pixel_streaming, or a new one).
    usage_metrics = models.JSONField(default=dict, blank=True)
    usage_checked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One member cannot hold the same active key twice (a double-submitted form).
            models.UniqueConstraint(
                fields=["owner", "fingerprint"],
                condition=models.Q(revoked_at__isnull=True) & ~models.Q(fingerprint=""),
                name="keys_apikey_one_active_copy_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} (…{self.last_four})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def account_known(self) -> bool:
        return bool(self.convai_account)

    @property
    def account_label(self) -> str:
        """How the account is named on a page: its name, else its email, else ""."""
        return self.account_name or self.account_email

    @property
    def encryption_context(self) -> bytes:
        return encryption_context_for(self.owner_id, self.pk)
