"""Reads about a person's account that other apps need (teams asks whether someone has
two-factor on)."""

from __future__ import annotations

from allauth.mfa.utils import is_mfa_enabled

from .models import User


def has_two_factor(user: User) -> bool:
    """An authenticator app or a passkey (recovery codes alone do not count)."""
    return bool(is_mfa_enabled(user))
