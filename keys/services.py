"""Personal Convai API keys: add (verified against Convai), verify, revoke, and use.

The plaintext key lives only in memory, for the moment of a Convai call: it is encrypted
before it touches the database (keys.crypto), and never put in a log line, audit event,
exception message or page. Functions that hold it hide their locals from error reports.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import CharField, F, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import Outcome
from audit.services import record
from convai.client import ConvaiClient
from convai.errors import (
    ConvaiAuthError,
    ConvaiError,
    ConvaiProtocolError,
    ConvaiRateLimitError,
    ConvaiRequestError,
    ConvaiUnavailableError,
)
from convai.types import AccountUsage
from convai_admin.errors import DomainError, NotFound

from . import crypto
from .models import ApiKey

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger("convai_admin.keys")

TARGET_TYPE = "api_key"


class ApiKeyError(DomainError):
    """A domain error whose message can be shown to the user as it is (never holds a key)."""


class ApiKeyRejected(ApiKeyError):
    """Convai answered 401: the key is wrong, deleted, or mistyped."""


class VerificationUnavailable(ApiKeyError):
    """Convai could not say whether the key works (down, timing out, rate limiting). The user
    may choose to save the key unverified and verify it later."""


class VerificationFailed(ApiKeyError):
    """Convai refused or garbled the check for another reason."""


class EncryptionUnavailable(ApiKeyError):
    """The server's keyring is missing or malformed, so no key can be stored safely."""


class DuplicateApiKey(ApiKeyError):
    """The member already holds this very key (same secret), active, under another row."""


class ApiKeyNotFound(NotFound):
    """No such key among the user's own keys (another user's key does not exist for you)."""

    default_message = "That API key does not exist."


class ApiKeyUnusable(ApiKeyError):
    """The key was revoked (its ciphertext wiped) or cannot be decrypted here."""


@dataclass(frozen=True)
class KeyCheck:
    """A stored key Convai accepted; `usage_read` is False when its account and usage answer
    could not be read (what was known before is kept)."""

    api_key: ApiKey
    usage_read: bool


@sensitive_variables()
def seal(api_key: ApiKey, raw_key: str) -> None:
    """Encrypt `raw_key` into `api_key` under the active key (does not save)."""
    api_key.ciphertext = crypto.encrypt(raw_key, associated_data=api_key.encryption_context)
    api_key.encryption_key_id = crypto.key_id_of(api_key.ciphertext) or ""


@sensitive_variables()
def reveal(api_key: ApiKey) -> str:
    """The plaintext key, in memory only. Raises crypto.DecryptionError on any failure."""
    if not api_key.ciphertext:
        raise ApiKeyUnusable(f"The API key “{api_key.label}” was revoked and cannot be used.")
    return crypto.decrypt(
        api_key.ciphertext,
        associated_data=api_key.encryption_context,
        what=f"API key {api_key.pk}",
    )


@sensitive_variables()
def _check_with_convai(raw_key: str) -> AccountUsage | None:
    """The key check: `/user/user-api-usage`, cheap and read-only, which also names the Convai
    account the key belongs to. None when Convai accepted the key but its answer could not be
    read (the account is then unknown). Translates Convai's errors into ours."""
    client = ConvaiClient(raw_key)
    try:
        return client.get_account_usage()
    except ConvaiAuthError:
        raise _rejected() from None
    except ConvaiProtocolError as exc:
        if exc.status is not None and 200 <= exc.status < 300:
            logger.info("Convai accepted a key but its account usage could not be read")
            return None  # a 2xx: the key was accepted, only the body is unreadable
        raise VerificationFailed(f"The key could not be verified: {exc.message}") from None
    except ConvaiRequestError:
        # Usage refused for another reason than the key (a 4xx other than 401, e.g. the
        # endpoint moved): fall back to the previous check, which proves the key but names
        # no account.
        pass
    except (ConvaiUnavailableError, ConvaiRateLimitError) as exc:
        raise _unavailable(exc) from None
    except ConvaiError as exc:
        raise VerificationFailed(f"The key could not be verified: {exc.message}") from None
    try:
        client.list_characters()
    except ConvaiAuthError:
        raise _rejected() from None
    except (ConvaiUnavailableError, ConvaiRateLimitError) as exc:
        raise _unavailable(exc) from None
    except ConvaiError as exc:
        raise VerificationFailed(f"The key could not be verified: {exc.message}") from None
    logger.info("Convai refused the account usage of a key it accepts; account unknown")
    return None


def _rejected() -> ApiKeyRejected:
    return ApiKeyRejected(
        "Convai rejected this key. Check that you copied the whole key from your Convai "
        "account and that it has not been deleted, then enter it again."
    )


def _unavailable(exc: ConvaiError) -> VerificationUnavailable:
    return VerificationUnavailable(
        f"The key could not be verified: {exc.message} You can try again, or save it "
        "without verifying and verify it later from this page."
    )


# Bounds for what Convai sends, so an odd answer cannot break a save (the columns' sizes).
_MAX_METRICS = 20
_MAX_METRIC_ID = 60


def _clip(text: str, model_field: str) -> str:
    """`text` cut to the column's size (a name longer than Convai's own is still saved)."""
    column = ApiKey._meta.get_field(model_field)
    limit = column.max_length if isinstance(column, CharField) else None
    return text[:limit] if limit else text


def _number(value: float | None) -> int | float | None:
    """Whole numbers as ints (the JSON and the page read better); None stays None."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def account_identity(name: str, email: str) -> str:
    """What makes two keys "the same Convai account": the email (case-insensitive), or the
    name when Convai sent no email; "" when neither is known."""
    email = email.strip().lower()
    return email or name.strip()


def _account_fields(usage: AccountUsage) -> dict[str, Any]:
    """The ApiKey columns a readable usage answer sets (all of them, so stale values go)."""
    name = _clip(usage.account_name, "account_name")
    email = _clip(usage.email, "account_email")
    metrics = {
        metric_id[:_MAX_METRIC_ID]: {
            "limit": _number(metric.limit),
            "usage": _number(metric.usage),
        }
        for metric_id, metric in list(usage.metrics.items())[:_MAX_METRICS]
    }
    return {
        "account_name": name,
        "account_email": email,
        "convai_account": _clip(account_identity(name, email), "convai_account"),
        "plan_name": _clip(usage.plan_name, "plan_name"),
        "plan_renews_at": usage.renews_at,
        "usage_metrics": metrics,
    }


def _account_details(api_key: ApiKey) -> dict[str, object]:
    """Audit details naming the account: name, email (the member's own account; no secret)
    and plan, or that the account is unknown."""
    if not api_key.account_known:
        return {"account": "unknown"}
    return {
        "account_name": api_key.account_name,
        "account_email": api_key.account_email,
        "plan": api_key.plan_name,
    }


def _apply_usage(api_key: ApiKey, usage: AccountUsage | None, now: datetime) -> list[str]:
    """Copy a readable usage answer onto `api_key`; returns the fields changed. An unreadable
    one (None) changes nothing: what was known before stays, with its own check time."""
    if usage is None:
        return []
    fields = _account_fields(usage)
    fields["usage_checked_at"] = now
    for name, value in fields.items():
        setattr(api_key, name, value)
    return list(fields)


def _failure_reason(error: ApiKeyError) -> str:
    if isinstance(error, DuplicateApiKey):
        return "already added"
    if isinstance(error, ApiKeyRejected):
        return "rejected by Convai"
    if isinstance(error, VerificationUnavailable):
        return "Convai unavailable"
    return "verification failed"


def _record_key(
    action: str,
    *,
    actor: User | None,
    api_key: ApiKey | None,
    label: str,
    details: dict[str, object],
    outcome: str = Outcome.SUCCESS,
) -> None:
    record(
        action,
        actor=actor,
        target_type=TARGET_TYPE,
        target_id=api_key.pk if api_key is not None else "",
        target_label=label,
        outcome=outcome,
        details=details,
    )


@sensitive_variables()
def add_api_key(
    *, actor: User, label: str, raw_key: str, skip_verification: bool = False
) -> ApiKey:
    """Verify the key with Convai (unless the user chose to skip), then store it encrypted.

    Nothing is saved when verification fails; the failure is audited without the key."""
    label = label.strip()
    raw_key = raw_key.strip()
    last_four = raw_key[-4:]
    try:
        crypto.get_keyring()  # fail before calling Convai if the key could not be stored
    except crypto.KeyringError:
        raise EncryptionUnavailable(
            "Keys cannot be stored right now: this server's encryption keyring is not set up. "
            "Ask your administrator to run `python manage.py check`."
        ) from None
    fingerprint = crypto.fingerprint(raw_key)

    def refused(error: ApiKeyError) -> ApiKeyError:
        _record_key(
            "api_key.added",
            actor=actor,
            api_key=None,
            label=label,
            outcome=Outcome.FAILURE,
            details={
                "label": label,
                "last_four": last_four,
                "verified": False,
                "reason": _failure_reason(error),
            },
        )
        return error

    held = _held_copy(actor, fingerprint)
    if held is not None:  # before calling Convai: nothing to verify
        raise refused(_duplicate(held))
    usage: AccountUsage | None = None
    if not skip_verification:
        try:
            usage = _check_with_convai(raw_key)
        except ApiKeyError as error:
            raise refused(error) from None
    now = timezone.now()
    api_key = ApiKey(
        owner=actor,
        label=label,
        last_four=last_four,
        created_at=now,
        verified_at=None if skip_verification else now,
        fingerprint=fingerprint,
    )
    _apply_usage(api_key, usage, now)
    seal(api_key, raw_key)
    details: dict[str, object] = {
        "label": label,
        "last_four": last_four,
        "verified": not skip_verification,
    }
    if not skip_verification:
        details.update(_account_details(api_key))
    try:
        with transaction.atomic():
            api_key.save(force_insert=True)
            _record_key("api_key.added", actor=actor, api_key=api_key, label=label, details=details)
    except IntegrityError:
        # The same key saved meanwhile (a double-submitted form): the constraint refused it.
        held = _held_copy(actor, fingerprint)
        if held is None:
            raise
        raise refused(_duplicate(held)) from None
    return api_key


def _held_copy(owner: User, fingerprint: str) -> ApiKey | None:
    """The member's active key with this fingerprint, if they already added it."""
    return ApiKey.objects.filter(
        owner=owner, revoked_at__isnull=True, fingerprint=fingerprint
    ).first()


def _duplicate(held: ApiKey) -> DuplicateApiKey:
    return DuplicateApiKey(
        f"You already added this key as “{held.label}” (…{held.last_four}). Use that one; to "
        "store it under another label, revoke it first."
    )


def _own_key(user: User, api_key_id: UUID | str) -> ApiKey:
    try:
        return ApiKey.objects.get(pk=api_key_id, owner=user)
    except (ApiKey.DoesNotExist, ValueError):
        raise ApiKeyNotFound() from None


@sensitive_variables()
def open_key(api_key: ApiKey, *, actor: User | None, action: str) -> str:
    """The plaintext of a stored key, or ApiKeyUnusable saying why not.

    A value that was altered or copied from another row is not "a missing key": it is logged
    as a warning and recorded as a failed `action`, since someone wrote to the database."""
    if not api_key.is_active:
        raise ApiKeyUnusable(f"The API key “{api_key.label}” was revoked and cannot be used.")
    try:
        return reveal(api_key)
    except crypto.ValueTampered:
        logger.warning(
            "Stored API key %s failed authentication: altered, or copied from another record",
            api_key.pk,
        )
        _record_key(
            action,
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            outcome=Outcome.FAILURE,
            details={"last_four": api_key.last_four, "reason": "stored value altered"},
        )
        raise ApiKeyUnusable(
            f"The stored copy of “{api_key.label}” was altered or does not belong to this "
            "record, so it was not used. Revoke it and add the key again; your administrator "
            "has been warned."
        ) from None
    except (crypto.DecryptionError, crypto.KeyringError):
        raise ApiKeyUnusable(
            f"The API key “{api_key.label}” can no longer be read on this server (its "
            "encryption key is missing). Ask your administrator to run `python manage.py "
            "check`, or revoke it and add it again."
        ) from None


@sensitive_variables()
def verify_api_key(*, actor: User, api_key_id: UUID | str) -> KeyCheck:
    """Check a stored key against Convai again (e.g. one saved while Convai was down), and
    learn its account, plan and usage on the way."""
    return _check_stored_key(actor=actor, api_key_id=api_key_id, action="api_key.verified")


@sensitive_variables()
def refresh_api_key_usage(*, actor: User, api_key_id: UUID | str) -> KeyCheck:
    """Ask Convai again for the account, plan and quota of a stored key ("Refresh usage").
    A key Convai accepts is verified too."""
    return _check_stored_key(actor=actor, api_key_id=api_key_id, action="api_key.usage_checked")


@sensitive_variables()
def _check_stored_key(*, actor: User, api_key_id: UUID | str, action: str) -> KeyCheck:
    api_key = _own_key(actor, api_key_id)
    raw_key = open_key(api_key, actor=actor, action=action)
    try:
        usage = _check_with_convai(raw_key)
    except ApiKeyError as error:
        _record_key(
            action,
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            outcome=Outcome.FAILURE,
            details={"last_four": api_key.last_four, "reason": _failure_reason(error)},
        )
        raise
    now = timezone.now()
    api_key.verified_at = api_key.last_used_at = now
    changed = ["verified_at", "last_used_at", *_apply_usage(api_key, usage, now)]
    details: dict[str, object] = {"last_four": api_key.last_four, **_account_details(api_key)}
    details["usage"] = "unreadable" if usage is None else usage_summary(api_key)
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).update(
            **{name: getattr(api_key, name) for name in changed}
        )
        _record_key(action, actor=actor, api_key=api_key, label=api_key.label, details=details)
    return KeyCheck(api_key=api_key, usage_read=usage is not None)


def usage_summary(api_key: ApiKey) -> dict[str, object]:
    """The two quotas the dashboard spends, as `{"interactions": "120/5000", ...}`, for
    audit details (what the member saw when they checked)."""
    summary: dict[str, object] = {}
    for metric_id in ("interactions", "core-api"):
        metric = api_key.usage_metrics.get(metric_id)
        if isinstance(metric, dict):
            summary[metric_id] = {"used": metric.get("usage"), "limit": metric.get("limit")}
    return summary


def mark_verified_without_call(
    api_key: ApiKey, *, reason: str, usage: AccountUsage | None = None
) -> ApiKey:
    """Mark a key verified that is valid by construction (the built-in sandbox issued it in
    this process, before any server could answer a verification call). Audited with why.
    `usage`, when the issuer could say it, stores the account the key belongs to."""
    now = timezone.now()
    with transaction.atomic():
        api_key.verified_at = now
        changed = _apply_usage(api_key, usage, now)
        api_key.save(update_fields=["verified_at", *changed])
        _record_key(
            "api_key.verified",
            actor=api_key.owner,
            api_key=api_key,
            label=api_key.label,
            details={"last_four": api_key.last_four, "how": reason, **_account_details(api_key)},
        )
    return api_key


def revoke_api_key(*, actor: User, api_key_id: UUID | str) -> ApiKey:
    """Wipe the ciphertext and mark the key revoked. Revoking twice is a harmless no-op."""
    with transaction.atomic():
        try:
            api_key = ApiKey.objects.select_for_update().get(pk=api_key_id, owner=actor)
        except (ApiKey.DoesNotExist, ValueError):
            raise ApiKeyNotFound() from None
        if not api_key.is_active:
            return api_key
        api_key.ciphertext = ""
        api_key.fingerprint = ""
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["ciphertext", "fingerprint", "revoked_at"])
        _record_key(
            "api_key.revoked",
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            details={"label": api_key.label, "last_four": api_key.last_four},
        )
    return api_key


# How stale a key's `last_used_at` may be: it is not written again within this.
LAST_USED_PRECISION = timedelta(minutes=1)


@sensitive_variables()
def client_for(api_key: ApiKey, *, actor: User | None = None) -> ConvaiClient:
    """A Convai client acting with this stored key. The plaintext exists only inside it.

    Raises ApiKeyUnusable for a revoked key or one the keyring cannot open."""
    client = ConvaiClient(open_key(api_key, actor=actor, action="api_key.used"))
    now = timezone.now()
    # "Last used" is shown to the minute: a key used again within a minute (the token broker
    # mints with one key for every player) is not written again.
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return client


# --- Usage that refreshes by itself -----------------------------------------------------------

# A job's keys are asked again when it ends, unless they were asked this recently (jobs that
# end one after another would otherwise ask Convai for the same figures again and again).
AFTER_JOB_MIN_AGE = timedelta(minutes=1)


def refresh_usage_after_job(*, api_key_ids: Iterable[UUID | str]) -> str:
    """Refresh the account usage of the keys a job used, now that it spent their quota.

    The job engine calls this once a job has finished (done, failed or cancelled), with the
    IDs of the keys it called Convai with; it never raises for a key (a failure is counted in
    the summary it returns), so it cannot fail the job."""
    ids = set()
    for value in api_key_ids:
        try:
            ids.add(UUID(str(value)))
        except ValueError:
            continue
    due = (
        _refreshable()
        .filter(pk__in=ids)
        .exclude(usage_checked_at__gte=timezone.now() - AFTER_JOB_MIN_AGE)
    )
    return _refresh_usage(list(due), nothing="no key's usage was due")


def refresh_stale_usage() -> str:
    """One periodic pass: refresh the usage of keys last checked longer ago than
    CONVAI_USAGE_MAX_AGE_SECONDS (default an hour), or never; oldest first, at most
    CONVAI_USAGE_REFRESH_BATCH a pass, so one pass cannot flood Convai. For the scheduler."""
    max_age = timedelta(seconds=settings.CONVAI_USAGE_MAX_AGE_SECONDS)
    batch = max(1, int(settings.CONVAI_USAGE_REFRESH_BATCH))
    stale = (
        _refreshable()
        .exclude(usage_checked_at__gte=timezone.now() - max_age)
        .order_by(F("usage_checked_at").asc(nulls_first=True), "created_at")
    )
    keys = list(stale[: batch + 1])
    minutes = round(max_age.total_seconds() / 60)
    summary = _refresh_usage(
        keys[:batch], nothing=f"no key's usage was older than {minutes} minutes"
    )
    if len(keys) > batch:
        summary += "; more are due next pass"
    return summary


def _refreshable() -> QuerySet[ApiKey]:
    """Keys whose usage a background refresh may ask for: active and verified (a key saved
    unverified waits for its owner's "Verify", which is audited as theirs)."""
    return ApiKey.objects.usable().exclude(ciphertext="")


@sensitive_variables()
def _refresh_usage(keys: list[ApiKey], *, nothing: str) -> str:
    """Ask Convai for each key's usage and store what it says. Routine reads of figures the
    page caches: not audited per key (a tampered value still is, by open_key), and "last
    used" stays the member's. A failing key keeps what was known and its check time."""
    refreshed = 0
    failures: Counter[str] = Counter()
    for api_key in keys:
        try:
            raw_key = open_key(api_key, actor=None, action="api_key.usage_checked")
            usage = _check_with_convai(raw_key)
        except ApiKeyUnusable:
            failures["unusable"] += 1
            continue
        except ApiKeyError as error:
            failures[_failure_reason(error)] += 1
            logger.info(
                "Usage refresh of API key %s failed: %s", api_key.pk, _failure_reason(error)
            )
            continue
        if usage is None:
            failures["answer unreadable"] += 1
            continue
        changed = _apply_usage(api_key, usage, timezone.now())
        ApiKey.objects.filter(pk=api_key.pk).update(
            **{name: getattr(api_key, name) for name in changed}
        )
        refreshed += 1
    if not refreshed and not failures:
        return nothing
    summary = f"usage refreshed for {refreshed} key{'s' * (refreshed != 1)}"
    if failures:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(failures.items()))
        summary += f"; {sum(failures.values())} failed ({reasons})"
    return summary
