"""Sandbox keys and fault injection: the operations the `sandbox_key` / `sandbox_fault`
commands, the demo bootstrap and the tests share."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.db.models import F, Q
from django.utils import timezone

from .models import SandboxFault, SandboxKey

GLOBAL = ""


def hash_key(raw_key: str) -> str:
    """Keys are 128 random bits, so a plain SHA-256 is enough to make the stored value
    useless as a key while keeping the lookup a single indexed query."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def create_sandbox_key(label: str) -> str:
    """Create a key for a new remote user and return it; it is never retrievable again.

    The format (32 hex characters) mirrors a real Convai key so the dashboard's key form
    treats both alike."""
    label = label.strip()
    if not label:
        raise ValueError("A sandbox key needs a label.")
    raw_key = secrets.token_hex(16)
    SandboxKey.objects.create(label=label[:80], key_hash=hash_key(raw_key))
    return raw_key


def authenticate(raw_key: str) -> SandboxKey | None:
    """The key's owner, or None. Counts the request (tests assert retries by this count)."""
    if not raw_key:
        return None
    key = SandboxKey.objects.filter(key_hash=hash_key(raw_key)).first()
    if key is not None:
        now = timezone.now()
        SandboxKey.objects.filter(pk=key.pk).update(
            request_count=F("request_count") + 1, last_used_at=now
        )
        key.request_count += 1
        key.last_used_at = now
    return key


def revoke_sandbox_keys(label: str) -> int:
    """Delete every key with this label (and, as on a real provider, its characters)."""
    deleted, _ = SandboxKey.objects.filter(label=label).delete()
    return deleted


@dataclass(frozen=True)
class ActiveFaults:
    """The faults in force for one request: the global row merged with the key's row."""

    latency_ms: int = 0
    failure_rate: float = 0.0
    outage: bool = False
    rate_limit: bool = False
    retry_after: int = 1
    malformed: bool = False


def set_fault(
    *,
    key_label: str | None = None,
    latency_ms: int = 0,
    failure_rate: float = 0.0,
    outage: bool = False,
    rate_limit: bool = False,
    retry_after: int = 1,
    malformed: bool = False,
) -> SandboxFault:
    """Replace the fault configuration of one scope: keys labelled `key_label`, or every
    request when it is None."""
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError("failure_rate must be between 0 and 1.")
    if latency_ms < 0 or retry_after < 0:
        raise ValueError("latency_ms and retry_after cannot be negative.")
    fault, _ = SandboxFault.objects.update_or_create(
        key_label=key_label or GLOBAL,
        defaults={
            "latency_ms": latency_ms,
            "failure_rate": failure_rate,
            "outage": outage,
            "rate_limit": rate_limit,
            "retry_after": retry_after,
            "malformed": malformed,
        },
    )
    return fault


def clear_faults(*, key_label: str | None = None, everything: bool = False) -> int:
    """Remove one scope's faults (the global one by default), or all of them."""
    faults = SandboxFault.objects.all()
    if not everything:
        faults = faults.filter(key_label=key_label or GLOBAL)
    deleted, _ = faults.delete()
    return deleted


def active_faults(key: SandboxKey | None) -> ActiveFaults:
    """Merge the global faults with the key's own, the stronger setting winning."""
    scopes = Q(key_label=GLOBAL)
    if key is not None:
        scopes |= Q(key_label=key.label)
    rows = list(SandboxFault.objects.filter(scopes))
    if not rows:
        return ActiveFaults()
    limited = [row.retry_after for row in rows if row.rate_limit]
    return ActiveFaults(
        latency_ms=max(row.latency_ms for row in rows),
        failure_rate=max(row.failure_rate for row in rows),
        outage=any(row.outage for row in rows),
        rate_limit=bool(limited),
        retry_after=max(limited) if limited else 1,
        malformed=any(row.malformed for row in rows),
    )
