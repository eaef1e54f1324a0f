"""Sandbox accounts, keys and fault injection: the operations the `sandbox_account`,
`sandbox_key` and `sandbox_fault` commands, the demo bootstrap and the tests share."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import USAGE_METRICS, SandboxAccount, SandboxFault, SandboxKey, SandboxToken

GLOBAL = ""
# How long a minted auth token lives: "about one hour" (api-notes.md, "Short-lived tokens").
TOKEN_LIFETIME = timedelta(hours=1)


def hash_key(raw_key: str) -> str:
    """Keys are 128 random bits, so a plain SHA-256 is enough to make the stored value
    useless as a key while keeping the lookup a single indexed query."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _default_email(name: str) -> str:
    local = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "user"
    return f"{local[:60]}@sandbox.example.com"


def configure_sandbox_account(
    name: str,
    *,
    email: str | None = None,
    plan_name: str | None = None,
    renews_at: datetime | None = None,
    limits: Mapping[str, int] | None = None,
    usage: Mapping[str, int] | None = None,
) -> SandboxAccount:
    """Create the account called `name` or change it; only the settings given are changed.
    `limits` and `usage` are keyed by metric id (`interactions`, `core-api`, ...)."""
    name = name.strip()[:80]
    if not name:
        raise ValueError("A sandbox account needs a name.")
    changes: dict[str, object] = {}
    if email is not None:
        changes["email"] = email.strip()
    if plan_name is not None:
        if not plan_name.strip():
            raise ValueError("A plan needs a name.")
        changes["plan_name"] = plan_name.strip()
    if renews_at is not None:
        changes["renews_at"] = renews_at
    for values, column in ((limits or {}, 0), (usage or {}, 1)):
        for metric, value in values.items():
            if metric not in USAGE_METRICS:
                raise ValueError(
                    f"Unknown metric {metric!r}: use one of {', '.join(USAGE_METRICS)}."
                )
            if value < 0:
                raise ValueError("Limits and usage cannot be negative.")
            changes[USAGE_METRICS[metric][column]] = value
    account, created = SandboxAccount.objects.get_or_create(
        name=name, defaults={"email": _default_email(name), **changes}
    )
    if changes and not created:
        for field, setting in changes.items():
            setattr(account, field, setting)
        account.save(update_fields=list(changes))
    return account


def create_sandbox_key(label: str, *, account: str | None = None) -> str:
    """Create a key and return it; it is never retrievable again. With `account`, the key
    joins that account (created if new), so it sees the same characters as the account's
    other keys; without it, the key is a new account of its own, as every Convai user is.

    The format (32 hex characters) mirrors a real Convai key so the dashboard's key form
    treats both alike."""
    label = label.strip()
    if not label:
        raise ValueError("A sandbox key needs a label.")
    raw_key = secrets.token_hex(16)
    with transaction.atomic():
        if account is None:
            user_id = secrets.token_hex(16)
            name = f"{label[:67]}-{user_id[:12]}"
            owner = SandboxAccount.objects.create(
                name=name, email=_default_email(name), user_id=user_id
            )
        else:
            owner = configure_sandbox_account(account)
        SandboxKey.objects.create(account=owner, label=label[:80], key_hash=hash_key(raw_key))
    return raw_key


def authenticate(raw_key: str) -> SandboxKey | None:
    """The key (with its account), or None. Counts the request (tests assert retries by this
    count)."""
    if not raw_key:
        return None
    key = SandboxKey.objects.select_related("account").filter(key_hash=hash_key(raw_key)).first()
    if key is not None:
        _count_request(key)
    return key


def _count_request(key: SandboxKey) -> None:
    """One more request of `key`, in the database and on the object."""
    now = timezone.now()
    SandboxKey.objects.filter(pk=key.pk).update(
        request_count=F("request_count") + 1, last_used_at=now
    )
    key.request_count += 1
    key.last_used_at = now


def authenticate_token(raw_token: str) -> SandboxKey | None:
    """The key a live (unexpired, unrevoked) auth token acts for, or None; counted as a request
    of that key, like authenticate."""
    if not raw_token:
        return None
    token = (
        SandboxToken.objects.select_related("key")
        .filter(token_hash=hash_key(raw_token), revoked_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .first()
    )
    if token is None:
        return None
    key = token.key
    _count_request(key)
    # The account is read by the usage endpoint: one more query only when asked for.
    return key


def mint_token(key: SandboxKey) -> tuple[str, datetime]:
    """A new auth token for the key and when it expires. Older tokens stay valid (Convai's
    documented behaviour: minting does not invalidate)."""
    raw_token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + TOKEN_LIFETIME
    SandboxToken.objects.create(key=key, token_hash=hash_key(raw_token), expires_at=expires_at)
    return raw_token, expires_at


def _accounts_token(key: SandboxKey, raw_token: str) -> SandboxToken | None:
    """The token if it was minted by a key of the same account (another account's token is
    as unknown as a made-up one)."""
    if not raw_token:
        return None
    return (
        SandboxToken.objects.filter(token_hash=hash_key(raw_token), key__account_id=key.account_id)
        .select_related("key")
        .first()
    )


def extend_token(key: SandboxKey, raw_token: str) -> datetime | None:
    """Push a live token's expiry to a full lifetime from now; None when the token is unknown,
    expired or revoked."""
    token = _accounts_token(key, raw_token)
    now = timezone.now()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return None
    token.expires_at = now + TOKEN_LIFETIME
    token.save(update_fields=["expires_at"])
    return token.expires_at


def revoke_token(key: SandboxKey, raw_token: str) -> bool:
    """Revoke a token of the key's account (again is fine); False when it is not one."""
    token = _accounts_token(key, raw_token)
    if token is None:
        return False
    if token.revoked_at is None:
        SandboxToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    return True


def count_core_api_call(key: SandboxKey) -> None:
    """One successful core-API call spent from the key's account quota, as the usage endpoint
    reports it. An F() update, so concurrent calls are all counted."""
    SandboxAccount.objects.filter(pk=key.account_id).update(core_api_usage=F("core_api_usage") + 1)


def revoke_sandbox_keys(label: str) -> int:
    """Delete every key with this label. An account left without keys goes too, with its
    characters (as on a real provider); one that still has keys keeps them."""
    with transaction.atomic():
        keys = SandboxKey.objects.filter(label=label)
        account_ids = set(keys.values_list("account_id", flat=True))
        deleted, _ = keys.delete()
        orphans, _ = SandboxAccount.objects.filter(pk__in=account_ids, keys__isnull=True).delete()
    return deleted + orphans


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
