"""Build credentials: `cvb_<prefix>_<secret>`, 256 random bits of secret, stored as SHA-256.

A plain (unkeyed) SHA-256 is enough for a random 256-bit secret: nothing can be guessed from
the digest, and it keeps working if the server's secret key rotates. The prefix is public (it
appears on the build page and in the audit log) and only finds the row."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "cvb_"
PREFIX_LENGTH = 10


@dataclass(frozen=True)
class NewCredential:
    value: str  # shown once, never stored
    prefix: str
    digest: str


def digest_of(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_credential() -> NewCredential:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    value = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewCredential(value=value, prefix=prefix, digest=digest_of(value))


def prefix_of(value: str) -> str | None:
    """The lookup prefix a presented credential claims, or None if it is not one of ours."""
    if not value.startswith(PREFIX):
        return None
    prefix, _, secret = value[len(PREFIX) :].partition("_")
    if len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix


def matches(value: str, digest: str) -> bool:
    """Constant-time comparison of the presented credential's digest with a stored one."""
    return bool(digest) and hmac.compare_digest(digest_of(value), digest)


def new_player_secret() -> str:
    """The HS256 secret a game's backend signs player tokens with (256 bits)."""
    return secrets.token_urlsafe(32)
