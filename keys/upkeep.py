"""Keeping stored keys in shape, run by commands and migrations rather than by members:
re-encrypting them (and members' two-factor secrets, accounts/mfa_secrets.py, sealed with the
same keyring) under the active key after a keyring rotation (rotate_encryption_keys) and
giving them the fingerprint that recognises a key added twice (fingerprint_api_keys, the
0003 migration). Each key is decrypted here only for the moment it is rewritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db import transaction
from django.db.models import Model
from django.views.decorators.debug import sensitive_variables

from accounts import mfa_secrets
from audit.models import Outcome
from audit.services import record

from . import crypto, hooks
from .models import ApiKey, encryption_context_for
from .services import reveal, seal


@dataclass
class RotationResult:
    """What a rotation did, per key ID. `failed` maps a row ID to why it could not be read."""

    active_id: str
    rotated: dict[str, int] = field(default_factory=dict)
    already_current: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    # Two-factor secrets, sealed with the same keyring: rotated with the keys.
    mfa: mfa_secrets.MfaRotation = field(default_factory=mfa_secrets.MfaRotation)
    # Other apps' sealed values (keys.hooks.register_sealed_store), per store.
    stores: dict[str, hooks.StoreRotation] = field(default_factory=dict)

    @property
    def failed_count(self) -> int:
        return (
            len(self.failed)
            + len(self.mfa.failed)
            + sum(store.failed for store in self.stores.values())
        )


def rotate_api_keys() -> RotationResult:
    """Re-encrypt every stored key that is still on an older key under the active one, then
    the two-factor secrets (accounts.mfa_secrets.rotate), so that the older key can go.

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
    result.mfa = mfa_secrets.rotate(result.active_id)
    result.stores = hooks.rotate_sealed_stores(result.active_id)
    record(
        "encryption.rotate",
        actor_label="rotate_encryption_keys",
        target_type="keyring",
        target_id=result.active_id,
        target_label="ENCRYPTION_KEYS",
        outcome=Outcome.FAILURE if result.failed_count else Outcome.SUCCESS,
        details={
            "active_key_id": result.active_id,
            "rotated": result.rotated,
            "already_current": result.already_current,
            "failed": len(result.failed),
            "two_factor": {
                "rotated": result.mfa.rotated,
                "already_current": result.mfa.already_current,
                "failed": len(result.mfa.failed),
            },
            "other_stores": {name: asdict(store) for name, store in result.stores.items()},
        },
    )
    return result


@sensitive_variables()
def _reseal(api_key: ApiKey) -> None:
    seal(api_key, reveal(api_key))


@dataclass
class FingerprintFill:
    """What fill_fingerprints did: rows given a fingerprint, rows it could not decrypt, and
    second copies of a key their owner already held (left without one)."""

    filled: int = 0
    unreadable: int = 0
    duplicates: int = 0


@sensitive_variables()
def fill_fingerprints(*, model: type[Model] = ApiKey, everything: bool = False) -> FingerprintFill:
    """Fingerprint the active keys that have none (or, with `everything`, all of them again:
    after KEY_FINGERPRINT_SECRET changed). Each key is decrypted once, here only.

    `model` is the ApiKey class, or a data migration's historical one. A member who already
    holds the same key twice keeps the oldest copy's fingerprint; the later copies get none
    (so the one-copy constraint holds) and still work."""
    result = FingerprintFill()
    manager = model._default_manager
    active = manager.filter(revoked_at__isnull=True)
    with transaction.atomic():
        if everything:
            active.update(fingerprint="")
        taken = set(active.exclude(fingerprint="").values_list("owner_id", "fingerprint"))
        rows = (
            active.filter(fingerprint="")
            .exclude(ciphertext="")
            .order_by("created_at", "pk")
            .values_list("pk", "owner_id", "ciphertext")
        )
        for pk, owner_id, ciphertext in rows:
            try:
                value = crypto.fingerprint(
                    crypto.decrypt(
                        ciphertext,
                        associated_data=encryption_context_for(owner_id, pk),
                        what=f"API key {pk}",
                    )
                )
            except (crypto.DecryptionError, crypto.KeyringError):
                result.unreadable += 1
                continue
            if (owner_id, value) in taken:
                result.duplicates += 1
                continue
            taken.add((owner_id, value))
            manager.filter(pk=pk).update(fingerprint=value)
            result.filled += 1
    return result


@dataclass(frozen=True)
class Readability:
    """How many stored keys (and authenticators' two-factor secrets) the current keyring
    opens (a restore's check): counts only."""

    readable: int
    unreadable: int
    mfa_readable: int = 0
    mfa_unreadable: int = 0


@sensitive_variables()
def stored_keys_readability() -> Readability:
    """Decrypt every stored key and two-factor secret in memory, keep nothing: after a restore,
    proof that the keyring in force is the one they were sealed under."""
    readable = unreadable = 0
    for api_key in ApiKey.objects.exclude(ciphertext="").iterator(chunk_size=500):
        try:
            reveal(api_key)
        except crypto.DecryptionError:
            unreadable += 1
        else:
            readable += 1
    mfa = mfa_secrets.readability()
    return Readability(
        readable=readable,
        unreadable=unreadable,
        mfa_readable=mfa.readable,
        mfa_unreadable=mfa.unreadable,
    )
