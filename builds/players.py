"""Per-player mode: the game's own backend signs a short JWT for a player, the game sends it
as `Authorization: Bearer <jwt>` with the build credential, and the broker checks it before
minting (docs/builds.md, "Per-player mode").

Checked with PyJWT: the one algorithm the build names (never the token's own choice), the
signature, `aud` = the build's ID, `exp` and `iat` (with a small clock skew), a `sub` (the
player, recorded in the audit event) and a lifetime of at most MAX_LIFETIME."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt

from .errors import Refused

CLOCK_SKEW = timedelta(seconds=30)
MAX_LIFETIME = timedelta(minutes=15)
MAX_SUBJECT = 128

_BAD = "The player token was refused"


def subject_of(token: str, *, algorithm: str, key: Any, audience: str) -> str:
    """The player's subject if `token` is a valid player JWT for this build; else Refused
    (401, `player_token_invalid`, saying what was wrong but nothing of the token)."""
    if not token:
        raise Refused(
            401,
            "player_token_missing",
            "This build needs a player token: send `Authorization: Bearer <jwt>` signed by "
            "your game's backend.",
        )
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "iat", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _refused("it has expired") from None
    except jwt.ImmatureSignatureError:
        raise _refused("it was issued in the future (check the clock of your backend)") from None
    except jwt.InvalidAudienceError:
        raise _refused("its audience (aud) is not this build's ID") from None
    except jwt.MissingRequiredClaimError as error:
        raise _refused(f"it has no {error.claim} claim") from None
    except jwt.InvalidTokenError:
        raise _refused("its signature, algorithm or format is wrong") from None
    lifetime = float(claims["exp"]) - float(claims["iat"])
    if lifetime > MAX_LIFETIME.total_seconds():
        raise _refused(f"it lives longer than {MAX_LIFETIME.seconds // 60} minutes")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise _refused("its subject (sub) is empty")
    return subject.strip()[:MAX_SUBJECT]


def _refused(why: str) -> Refused:
    return Refused(401, "player_token_invalid", f"{_BAD}: {why}.")


def check_public_key(pem: str, algorithm: str) -> str | None:
    """Why `pem` cannot verify `algorithm` tokens, or None when it can."""
    if "PRIVATE KEY" in pem:
        return "This is a private key: paste the public key only, and keep the private one safe."
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(pem.strip())
    except (jwt.InvalidKeyError, ValueError, TypeError):
        return f"This is not a PEM public key usable with {algorithm}."
    return None
