"""Encryption of members' Convai API keys: the AES-GCM keyring is convai_admin/encryption.py's
(shared with two-factor seeds, accounts/mfa_secrets.py), re-exported here for keys' callers;
the fingerprints that recognise a key added twice are keys' own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from convai_admin.encryption import (
    KEY_BYTES,
    DecryptionError,
    KeyMissing,
    Keyring,
    KeyringError,
    ValueTampered,
    decrypt,
    encrypt,
    get_keyring,
    key_id_of,
    parse_keyring,
)
from convai_admin.keyring import KEY_ID_PATTERN

__all__ = [
    "DecryptionError",
    "KeyMissing",
    "Keyring",
    "KeyringError",
    "ValueTampered",
    "decrypt",
    "encrypt",
    "fingerprint",
    "generate_key_entry",
    "get_keyring",
    "key_id_of",
    "parse_keyring",
]


# --- Fingerprints: "is this the same key?" without decrypting every stored key ------------------

_FINGERPRINT_PURPOSE = b"convai-admin:api-key-fingerprint:v1"


def _fingerprint_key() -> bytes:
    """The HMAC key of fingerprints, derived from KEY_FINGERPRINT_SECRET (which defaults to
    SECRET_KEY). Not from the encryption keyring: that one rotates, and every rotation would
    make old fingerprints unmatchable. Purpose-bound, so it equals no other derived key."""
    secret = str(getattr(settings, "KEY_FINGERPRINT_SECRET", "") or settings.SECRET_KEY)
    return hmac.new(secret.encode("utf-8"), _FINGERPRINT_PURPOSE, hashlib.sha256).digest()


@sensitive_variables()
def fingerprint(plaintext: str) -> str:
    """HMAC-SHA256 of a key (64 hex digits): equal for the same key, useless for recovering
    it or for confirming a guessed key without the server's secret. Stored beside the
    ciphertext; never logged, audited or shown."""
    return hmac.new(_fingerprint_key(), plaintext.encode("utf-8"), hashlib.sha256).hexdigest()


def generate_key_entry(key_id: str | None = None) -> str:
    """A fresh "kid:base64key" keyring entry (URL-safe base64 of 32 random bytes)."""
    kid = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if not KEY_ID_PATTERN.match(kid):
        raise ValueError(
            "A key ID is 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    return f"{kid}:{key}"
