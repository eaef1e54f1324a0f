"""Personal Convai API keys: add (verified against Convai), verify, revoke, and use.

The plaintext key lives only in memory, for the moment of a Convai call: it is encrypted
before it touches the database (keys.crypto), and never put in a log line, audit event,
exception message or page. Functions that hold it hide their locals from error reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import Outcome
from audit.services import record
from convai.client import ConvaiClient
from convai.errors import (
    ConvaiAuthError,
    ConvaiError,
    ConvaiRateLimitError,
    ConvaiUnavailableError,
)
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


class ApiKeyNotFound(NotFound):
    """No such key among the user's own keys (another user's key does not exist for you)."""

    default_message = "That API key does not exist."


class ApiKeyUnusable(ApiKeyError):
    """The key was revoked (its ciphertext wiped) or cannot be decrypted here."""


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
def _check_with_convai(raw_key: str) -> None:
    """One cheap authenticated call (list characters). Translates Convai's errors into ours."""
    try:
        ConvaiClient(raw_key).list_characters()
    except ConvaiAuthError:
        raise ApiKeyRejected(
            "Convai rejected this key. Check that you copied the whole key from your Convai "
            "account and that it has not been deleted, then enter it again."
        ) from None
    except (ConvaiUnavailableError, ConvaiRateLimitError) as exc:
        raise VerificationUnavailable(
            f"The key could not be verified: {exc.message} You can try again, or save it "
            "without verifying and verify it later from this page."
        ) from None
    except ConvaiError as exc:
        raise VerificationFailed(f"The key could not be verified: {exc.message}") from None


def _failure_reason(error: ApiKeyError) -> str:
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
    if not skip_verification:
        try:
            _check_with_convai(raw_key)
        except ApiKeyError as error:
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
            raise
    now = timezone.now()
    api_key = ApiKey(
        owner=actor,
        label=label,
        last_four=last_four,
        created_at=now,
        verified_at=None if skip_verification else now,
    )
    seal(api_key, raw_key)
    with transaction.atomic():
        api_key.save(force_insert=True)
        _record_key(
            "api_key.added",
            actor=actor,
            api_key=api_key,
            label=label,
            details={"label": label, "last_four": last_four, "verified": not skip_verification},
        )
    return api_key


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
def verify_api_key(*, actor: User, api_key_id: UUID | str) -> ApiKey:
    """Check a stored key against Convai again (e.g. one saved while Convai was down)."""
    api_key = _own_key(actor, api_key_id)
    raw_key = open_key(api_key, actor=actor, action="api_key.verified")
    try:
        _check_with_convai(raw_key)
    except ApiKeyError as error:
        _record_key(
            "api_key.verified",
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            outcome=Outcome.FAILURE,
            details={"last_four": api_key.last_four, "reason": _failure_reason(error)},
        )
        raise
    now = timezone.now()
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).update(verified_at=now, last_used_at=now)
        api_key.verified_at = api_key.last_used_at = now
        _record_key(
            "api_key.verified",
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            details={"last_four": api_key.last_four},
        )
    return api_key


def mark_verified_without_call(api_key: ApiKey, *, reason: str) -> ApiKey:
    """Mark a key verified that is valid by construction (the built-in sandbox issued it in
    this process, before any server could answer a verification call). Audited with why."""
    now = timezone.now()
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).update(verified_at=now)
        api_key.verified_at = now
        _record_key(
            "api_key.verified",
            actor=api_key.owner,
            api_key=api_key,
            label=api_key.label,
            details={"last_four": api_key.last_four, "how": reason},
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
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["ciphertext", "revoked_at"])
        _record_key(
            "api_key.revoked",
            actor=actor,
            api_key=api_key,
            label=api_key.label,
            details={"label": api_key.label, "last_four": api_key.last_four},
        )
    return api_key


@sensitive_variables()
def client_for(api_key: ApiKey, *, actor: User | None = None) -> ConvaiClient:
    """A Convai client acting with this stored key. The plaintext exists only inside it.

    Raises ApiKeyUnusable for a revoked key or one the keyring cannot open."""
    client = ConvaiClient(open_key(api_key, actor=actor, action="api_key.used"))
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
    return client


@dataclass
class RotationResult:
    """What a rotation did, per key ID. `failed` maps a row ID to why it could not be read."""

    active_id: str
    rotated: dict[str, int] = field(default_factory=dict)
    already_current: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def rotate_api_keys() -> RotationResult:
    """Re-encrypt every stored key that is still on an older key under the active one.

    Each row is locked and rewritten in its own transaction, so an interruption leaves every
    row readable (old or new key, never half). Rows that cannot be decrypted are left as they
    are and reported. The counts (never any key material) go to the audit log."""
    result = RotationResult(active_id=crypto.get_keyring().active_id)
    stored = ApiKey.objects.exclude(ciphertext="").values_list("pk", "ciphertext")
    to_rotate = []
    for pk, value in stored:
        if crypto.key_id_of(value) == result.active_id:
            result.already_current += 1
        else:
            to_rotate.append(pk)
    for pk in to_rotate:
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.select_for_update().filter(pk=pk).first()
                if api_key is None or not api_key.ciphertext:
                    continue  # revoked or deleted meanwhile
                old_id = crypto.key_id_of(api_key.ciphertext) or "malformed"
                if old_id == result.active_id:
                    result.already_current += 1
                    continue
                _reseal(api_key)
                api_key.save(update_fields=["ciphertext", "encryption_key_id"])
        except crypto.DecryptionError as error:
            result.failed[str(pk)] = str(error)
            continue
        result.rotated[old_id] = result.rotated.get(old_id, 0) + 1
    record(
        "encryption.rotate",
        actor_label="rotate_encryption_keys",
        target_type="keyring",
        target_id=result.active_id,
        target_label="ENCRYPTION_KEYS",
        outcome=Outcome.FAILURE if result.failed else Outcome.SUCCESS,
        details={
            "active_key_id": result.active_id,
            "rotated": result.rotated,
            "already_current": result.already_current,
            "failed": len(result.failed),
        },
    )
    return result


@sensitive_variables()
def _reseal(api_key: ApiKey) -> None:
    seal(api_key, reveal(api_key))
