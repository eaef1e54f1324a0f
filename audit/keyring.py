"""The audit key ring: the HMAC secrets that seal the chain, from the environment only.

settings.AUDIT_KEYS is "kid:base64key,kid2:base64key" (CONVAI_ADMIN_AUDIT_KEYS). The first
entry seals new events and checkpoints; every entry verifies, so the key can rotate: each
event names the key ID that sealed it. Nothing here is ever written to the database but the
key ID. In DEBUG without a ring, a key derived from SECRET_KEY stands in (a system check
warns); settings refuse to start without the ring when DEBUG is off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from convai_admin.keyring import decode_key, parse_entries

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
    raw = decode_key(encoded)
    if raw is None:
        raise AuditKeyringError(
            f"Audit key {key_id!r} in CONVAI_ADMIN_AUDIT_KEYS is not valid base64."
        )
    if len(raw) < MIN_KEY_BYTES:
        raise AuditKeyringError(
            f"Audit key {key_id!r} in CONVAI_ADMIN_AUDIT_KEYS is {len(raw)} bytes; "
            f"use at least {MIN_KEY_BYTES} random bytes."
        )
    return raw


def parse_audit_keys(spec: str) -> AuditKeyring:
    entries = parse_entries(spec, name="CONVAI_ADMIN_AUDIT_KEYS", error=AuditKeyringError)
    return AuditKeyring(keys={key_id: _decode(encoded, key_id) for key_id, encoded in entries})


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
