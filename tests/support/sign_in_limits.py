"""Sign-in lockouts for tests, through allauth's own rate-limit API (accounts/limits.py): the
same counters a wrong password fills, without the sign-in page's password hashing."""

from __future__ import annotations

from allauth.core import ratelimit
from django.conf import settings
from django.test import RequestFactory

from accounts.limits import locked_usernames, sign_in_key
from accounts.models import User


def lock_out_account(username: str, *, ip: str = "203.0.113.9") -> None:
    """As many failed sign-ins for the account as lock it (from an address of its own)."""
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=ip)
    for _ in range(settings.SIGN_IN_FAILURE_LIMIT):
        assert ratelimit.consume(request, action="login_failed", key=sign_in_key(username))


def is_locked_out(username: str) -> bool:
    return locked_usernames([User.objects.get(username=username)]) == {username}
