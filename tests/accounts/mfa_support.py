"""Two-factor helpers for tests: a user with TOTP (and recovery codes), and the current code,
computed with allauth's own TOTP functions (as an authenticator app would)."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.conf import settings
from django.utils import timezone

from accounts.models import User


def totp_code(secret: str, *, offset: int = 0) -> str:
    counter = int(timezone.now().timestamp()) // settings.MFA_TOTP_PERIOD + offset
    return format_hotp_value(hotp_value(secret, counter))


def enable_totp(user: User) -> tuple[str, list[str]]:
    """TOTP and recovery codes for `user`, as enrolment leaves them: (secret, codes)."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user).get_unused_codes()
    return secret, codes


def has_totp(user: User) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
