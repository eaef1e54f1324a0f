"""The audit key ring: the HMAC secrets that seal the chain, from the environment only.

settings.AUDIT_KEYS is "kid:base64key,kid2:base64key" (CONVAI_ADMIN_AUDIT_KEYS). The first
entry seals new events and checkpoints; every entry verifies, so the key can rotate: each
event names the key ID that sealed it. Nothing here is ever written to the database but the
key ID. In DEBUG without a ring, a key derived from SECRET_KEY stands in (a system check
warns); settings refuse to start without the ring when DEBUG is off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MIN_KEY_BYTES = 32
DEV_KEY_ID = "dev"


class AuditKeyringError(ImproperlyConfigured):
    """CONVAI_ADMIN_AUDIT_KEYS is malformed. Messages name key IDs or positions, never keys."""


@dataclass(frozen=True)
class AuditKeyring:
    keys: dict[str, bytes] = field(repr=False)
    derived: bool = False  # the DEBUG stand-in derived from SECRET_KEY

    @property
    def active_id(self) -> str:
        return next(iter(self.keys))

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def __repr__(self) -> str:
        return f"AuditKeyring(key_ids={list(self.keys)!r}, derived={self.derived})"


def _decode(encoded: str, key_id: str) -> bytes:
    text = encoded.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuditKeyringError(
            f"Audit key {key_id!r} in CONVAI_ADMIN_AUDIT_KEYS is not valid base64."
        ) from None
    if len(raw) < MIN_KEY_BYTES:
        raise AuditKeyringError(
            f"Audit key {key_id!r} in CONVAI_ADMIN_AUDIT_KEYS is {len(raw)} bytes; "
            f"use at least {MIN_KEY_BYTES} random bytes."
        )
    return raw


def parse_audit_keys(spec: str) -> AuditKeyring:
    keys: dict[str, bytes] = {}
    for position, entry in enumerate((spec or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise AuditKeyringError(f"CONVAI_ADMIN_AUDIT_KEYS entry {position} is empty.")
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not encoded.strip():
            raise AuditKeyringError(
                f"CONVAI_ADMIN_AUDIT_KEYS entry {position} is not in the form 'keyid:base64key'."
            )
        if not KEY_ID_PATTERN.match(key_id):
            raise AuditKeyringError(
                f"CONVAI_ADMIN_AUDIT_KEYS entry {position} has an invalid key ID: use 1-40 "
                "letters, digits, '.', '_' or '-'."
            )
        if key_id in keys:
            raise AuditKeyringError(f"Key ID {key_id!r} appears twice in CONVAI_ADMIN_AUDIT_KEYS.")
        keys[key_id] = _decode(encoded, key_id)
    return AuditKeyring(keys=keys)


@lru_cache(maxsize=8)
def _keyring_for(spec: str, secret_key: str) -> AuditKeyring:
    if spec.strip():
        return parse_audit_keys(spec)
    derived = hmac.new(
        secret_key.encode(), b"convai-admin audit chain (DEBUG only)", hashlib.sha256
    ).digest()
    return AuditKeyring(keys={DEV_KEY_ID: derived}, derived=True)


def keyring() -> AuditKeyring:
    """The configured ring (cached per value, so tests may override settings)."""
    spec = getattr(settings, "AUDIT_KEYS", "") or ""
    if not spec.strip() and not settings.DEBUG:
        raise AuditKeyringError("CONVAI_ADMIN_AUDIT_KEYS is not set.")
    return _keyring_for(spec, settings.SECRET_KEY)


def generate_entry(key_id: str) -> str:
    import secrets

    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
