"""Encryption at rest for secrets we must be able to use again: members' Convai API keys
(keys/crypto.py) and two-factor seeds (accounts/mfa_secrets.py). Here, at the base, so that
both apps reach it (docs/architecture.md).

AES-256-GCM from `cryptography`, with a keyring read from settings.ENCRYPTION_KEYS
("kid:base64key,kid2:base64key"; the first entry encrypts, every entry can decrypt, so keys
can be rotated without downtime). Every stored value names the key that sealed it:

    v1:<key id>:<base64(12-byte nonce | ciphertext and tag)>

Callers pass associated data that ties a value to its row and owner (or, where no row is known
yet, to its purpose), so a value copied into another row fails to decrypt instead of quietly
handing one member's secret to another. Any failure raises DecryptionError; stored text is
never returned or quoted as if it were a secret.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from convai_admin.keyring import KEY_ID_PATTERN, decode_key, parse_entries

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class KeyringError(ImproperlyConfigured):
    """settings.ENCRYPTION_KEYS is missing or malformed. Messages name key IDs or entry
    positions, never key material."""


class DecryptionError(Exception):
    """A stored value could not be decrypted. The message names the value and key ID only."""


class KeyMissing(DecryptionError):
    """The value names a key ID the keyring does not hold (restore that key)."""


class ValueTampered(DecryptionError):
    """The value is malformed, was altered, or was copied from another record: the
    authentication tag or the associated data does not match. Worth a warning, not a retry."""


@dataclass(frozen=True)
class Keyring:
    """Parsed keyring. `keys` keeps the configured order; the first one is active."""

    keys: dict[str, bytes] = field(repr=False)

    @property
    def active_id(self) -> str:
        return next(iter(self.keys))

    @property
    def key_ids(self) -> list[str]:
        return list(self.keys)

    def __repr__(self) -> str:  # never show key material, even in a debug traceback
        return f"Keyring(key_ids={self.key_ids!r})"


def _decode_key(encoded: str, key_id: str) -> bytes:
    raw = decode_key(encoded)
    if raw is None:
        raise KeyringError(f"Encryption key {key_id!r} in ENCRYPTION_KEYS is not valid base64.")
    if len(raw) != KEY_BYTES:
        raise KeyringError(
            f"Encryption key {key_id!r} in ENCRYPTION_KEYS decodes to {len(raw)} bytes; "
            f"AES-256 needs exactly {KEY_BYTES}. Generate one with "
            "`python manage.py generate_encryption_key`."
        )
    return raw


def parse_keyring(spec: str) -> Keyring:
    """Parse "kid:base64key,kid2:base64key" (first entry active)."""
    if not (spec or "").strip(", "):
        raise KeyringError(
            "ENCRYPTION_KEYS (CONVAI_ADMIN_ENCRYPTION_KEYS) is empty: stored Convai API keys "
            "and two-factor secrets cannot be encrypted or read. Generate an entry with "
            "`python manage.py generate_encryption_key`."
        )
    entries = parse_entries(spec, name="ENCRYPTION_KEYS", error=KeyringError)
    return Keyring(keys={key_id: _decode_key(encoded, key_id) for key_id, encoded in entries})


_cached: tuple[str, Keyring] | None = None


def get_keyring() -> Keyring:
    """The keyring for the current settings. Cached per setting value, so a changed setting
    (override_settings in tests, a reload) is never served a stale keyring."""
    global _cached
    spec = getattr(settings, "ENCRYPTION_KEYS", "") or ""
    cached = _cached
    if cached is not None and cached[0] == spec:
        return cached[1]
    keyring = parse_keyring(spec)
    _cached = (spec, keyring)
    return keyring


@sensitive_variables()  # the plaintext is a Convai API key or a two-factor seed
def encrypt(plaintext: str, *, associated_data: bytes, keyring: Keyring | None = None) -> str:
    """Seal `plaintext` with the active key; returns the self-describing stored form."""
    ring = keyring or get_keyring()
    key_id = ring.active_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[key_id]).encrypt(nonce, plaintext.encode("utf-8"), associated_data)
    payload = base64.b64encode(nonce + sealed).decode("ascii")
    return f"{FORMAT_VERSION}:{key_id}:{payload}"


def key_id_of(value: str) -> str | None:
    """The key ID a stored value claims, or None if the value is not in our format."""
    parts = value.split(":", 2)
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not KEY_ID_PATTERN.match(parts[1]):
        return None
    return parts[1]


@sensitive_variables()
def decrypt(
    value: str,
    *,
    associated_data: bytes,
    what: str = "stored value",
    keyring: Keyring | None = None,
) -> str:
    """Open a stored value. `what` names it in error messages (e.g. "API key <id>")."""
    ring = keyring or get_keyring()
    key_id = key_id_of(value)
    if key_id is None:
        raise ValueTampered(f"Cannot decrypt {what}: the stored value is malformed.")
    key = ring.keys.get(key_id)
    if key is None:
        raise KeyMissing(
            f"Cannot decrypt {what}: it was encrypted with key ID {key_id!r}, which is not in "
            "ENCRYPTION_KEYS. Restore that key to the keyring."
        )
    payload = value.split(":", 2)[2]
    try:
        blob = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueTampered(
            f"Cannot decrypt {what} (key ID {key_id!r}): the stored value is malformed."
        ) from None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise ValueTampered(
            f"Cannot decrypt {what} (key ID {key_id!r}): the stored value is malformed."
        )
    try:
        plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        return plain.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise ValueTampered(
            f"Cannot decrypt {what} (key ID {key_id!r}): the value was altered or belongs to "
            "another record."
        ) from None
