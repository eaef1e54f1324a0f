"""Reading a key ring from the environment: "kid:base64key,kid2:base64key", first active.

Two rings use this format — the encryption keys of stored Convai API keys (keys/crypto.py)
and the audit chain's HMAC keys (audit/keyring.py) — and they parse it the same way, here.
Messages name the variable, the entry's position and key IDs, never key material.
"""

from __future__ import annotations

import base64
import binascii
import re

from django.core.exceptions import ImproperlyConfigured

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def decode_key(encoded: str) -> bytes | None:
    """Standard or URL-safe base64, with or without padding; None when it is not base64."""
    text = encoded.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_entries(
    spec: str, *, name: str, error: type[ImproperlyConfigured]
) -> list[tuple[str, str]]:
    """The (key ID, encoded key) entries of a ring spec, in order, checked for shape: no empty
    entry, 'keyid:base64key' form, valid and unique key IDs. Decoding is the caller's (each
    ring has its own key length)."""
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for position, entry in enumerate((spec or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise error(f"{name} entry {position} is empty (stray comma?).")
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        # The entry itself is never quoted: a missing separator may mean it is a bare key.
        if not sep or not encoded.strip():
            raise error(f"{name} entry {position} is not in the form 'keyid:base64key'.")
        if not KEY_ID_PATTERN.match(key_id):
            raise error(
                f"{name} entry {position} has an invalid key ID: use 1-40 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit."
            )
        if key_id in seen:
            raise error(f"Key ID {key_id!r} appears twice in {name}.")
        seen.add(key_id)
        entries.append((key_id, encoded))
    return entries
