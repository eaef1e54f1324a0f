"""Two-factor secrets at rest: the TOTP seed and the recovery-code seed that allauth keeps in
`Authenticator.data` are sealed with the same keyring as stored Convai API keys
(convai_admin/encryption.py, settings.ENCRYPTION_KEYS). allauth seals and opens them through
`MFAAdapter.encrypt`/`decrypt` (accounts/adapter.py); the keyring's upkeep (rotation, the
restore's "does everything decrypt", the stored-key-ID check) reaches them through the
functions below, called by keys (docs/accounts.md).

allauth's hooks see the text only, never the row, so the associated data names the purpose
rather than the row: an API key's ciphertext copied into an authenticator (or the other way
round) fails to open. Only the sealed form is accepted: migration 0003 sealed every seed stored
in clear, and a clear seed written since (past the adapter) is refused as malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from allauth.mfa.models import Authenticator
from django.db import transaction
from django.db.models import Model
from django.views.decorators.debug import sensitive_variables

from convai_admin import encryption

PURPOSE = b"convai-admin:mfa-secret:v1"
# The keys of Authenticator.data that hold a sealed string: the TOTP secret, the recovery
# codes' seed, and codes migrated from django-allauth-2fa (a list).
SEALED_FIELDS = ("secret", "seed", "migrated_codes")


@sensitive_variables()
def seal(text: str) -> str:
    return encryption.encrypt(text, associated_data=PURPOSE)


@sensitive_variables()
def open_sealed(value: str) -> str:
    return encryption.decrypt(value, associated_data=PURPOSE, what="a two-factor secret")


def _values(data: dict[str, Any]) -> Iterator[str]:
    for name in SEALED_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, str))


@sensitive_variables()
def _rewrite(data: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """A copy of `data` with every sealed field passed through `change`."""
    out = dict(data)
    for name in SEALED_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            out[name] = change(value)
        elif isinstance(value, list):
            out[name] = [change(item) if isinstance(item, str) else item for item in value]
    return out


def _rows(model: type[Model]) -> Any:
    return model._default_manager.exclude(type="webauthn").order_by("pk")


def stored_key_ids() -> set[str]:
    """The encryption key IDs that two-factor secrets are sealed with (keys.E002/W002)."""
    ids: set[str] = set()
    for data in _rows(Authenticator).values_list("data", flat=True).iterator(chunk_size=500):
        ids.update(encryption.key_id_of(value) or "malformed" for value in _values(data))
    ids.discard("malformed")
    return ids


@dataclass
class MfaRotation:
    """What a rotation did to two-factor secrets: authenticators re-sealed per old key ID,
    those already on the active key, and those that could not be opened (ID → why)."""

    rotated: dict[str, int] = field(default_factory=dict)
    already_current: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@sensitive_variables()
def rotate(active_id: str) -> MfaRotation:
    """Re-seal every authenticator whose secrets are not all on the active key. Each row is
    locked and rewritten in its own transaction; an unreadable one is left as it is."""
    result = MfaRotation()
    for pk in _rows(Authenticator).values_list("pk", flat=True):
        try:
            with transaction.atomic():
                row = Authenticator.objects.select_for_update().filter(pk=pk).first()
                if row is None:
                    continue
                old = {encryption.key_id_of(value) for value in _values(row.data)}
                if old <= {active_id}:
                    result.already_current += 1
                    continue
                row.data = _rewrite(row.data, lambda value: seal(open_sealed(value)))
                row.save(update_fields=["data"])
        except encryption.DecryptionError as error:
            result.failed[f"authenticator {pk}"] = str(error)
            continue
        label = ", ".join(sorted(kid or "malformed" for kid in old - {active_id}))
        result.rotated[label] = result.rotated.get(label, 0) + 1
    return result


@dataclass(frozen=True)
class MfaReadability:
    readable: int
    unreadable: int


@sensitive_variables()
def readability() -> MfaReadability:
    """Open every authenticator's secrets in memory, keep nothing (a restore's check)."""
    readable = unreadable = 0
    for data in _rows(Authenticator).values_list("data", flat=True).iterator(chunk_size=500):
        try:
            for value in _values(data):
                open_sealed(value)
        except encryption.DecryptionError:
            unreadable += 1
        else:
            readable += 1
    return MfaReadability(readable=readable, unreadable=unreadable)


@sensitive_variables()
def seal_clear_secrets(model: type[Model]) -> int:
    """Seal the secrets still stored in clear (migration 0003, given the historical model);
    already sealed values are left alone, so it can run twice. Returns the rows changed."""
    changed = 0
    for row in _rows(model).select_for_update():
        data: dict[str, Any] = row.data
        new = _rewrite(data, lambda v: v if encryption.key_id_of(v) else seal(v))
        if new != data:
            model._default_manager.filter(pk=row.pk).update(data=new)
            changed += 1
    return changed


@sensitive_variables()
def open_sealed_secrets(model: type[Model]) -> int:
    """Migration 0003 backwards: the secrets in clear again, as allauth alone stores them."""
    changed = 0
    for row in _rows(model).select_for_update():
        data: dict[str, Any] = row.data
        new = _rewrite(data, lambda v: open_sealed(v) if encryption.key_id_of(v) else v)
        if new != data:
            model._default_manager.filter(pk=row.pk).update(data=new)
            changed += 1
    return changed
