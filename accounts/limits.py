"""Limits on guessing passwords.

Sign-in: allauth's `login_failed` rate limit (ACCOUNT_RATE_LIMITS, settings.py), counted in
Django's cache, which is shared by every process and survives restarts (the database cache, or
Redis with REDIS_URL). allauth counts every sign-in attempt before checking the password and
takes a successful one back, so only failures count, twice:
- per account (the username tried): SIGN_IN_FAILURE_LIMIT failures within
  SIGN_IN_COOLOFF_SECONDS lock the account, from every network, until the oldest failure ages
  out or an Admin or Owner unlocks it on the Members page (`unlock`);
- per IP address, across usernames (password spraying): LOGIN_IP_FAILURE_LIMIT failures within
  LOGIN_IP_WINDOW_SECONDS; nobody can lift that one early.
Wrong two-factor codes count against the same per-IP limit, and per person (allauth.mfa's own
key, `mfa_key`): the Members page shows either per-person lock, and `unlock` lifts both.

The counters are allauth's: `allauth.core.ratelimit` builds and clears the cache keys. Its
public `clear` clears every rate of an action, including the per-IP ones of whoever makes the
request; an Admin unlocking a member must lift only that member's per-account lock, so `unlock`
and `locked_usernames` use the same implementation with the per-account rates alone.

Password change, per user: the current password is the secret being guessed, by whoever holds
a session. Wrong current passwords are audited (`account.password_changed`, failure) and
counted in their own table (accounts.models.PasswordChangeFailure): the limit reads its
counter, never the audit log's details.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from allauth.account import app_settings as account_settings
from allauth.core.internal import ratelimit as allauth_ratelimit
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

if TYPE_CHECKING:
    from .models import User

APP = "allauth.account"
ACTION = "login_failed"
# The form errors allauth's adapter raises (accounts.adapter.AccountAdapter.pre_authenticate).
ACCOUNT_LOCKED = "sign_in_account_locked"
IP_LIMITED = "sign_in_ip_limited"


def sign_in_key(username: str) -> str:
    """The per-account key of `login_failed` (allauth hashes it). allauth's own adds the host
    name the request came in on (a RequestSite without django.contrib.sites): one account would
    then have a counter per allowed host, and an Admin could not name the one to clear."""
    return f"sign-in:{username.strip().lower()}"


def _config(per: str) -> dict[str, str]:
    """ACCOUNT_RATE_LIMITS["login_failed"] narrowed to its per-IP or per-account rates: the
    same rates, so the same counters."""
    rates = account_settings.RATE_LIMITS.get(ACTION) or ""
    parts = [part.strip() for part in rates.split(",") if part.strip().endswith(f"/{per}")]
    return {ACTION: ",".join(parts)}


def _rates(per: str) -> list[allauth_ratelimit.Rate]:
    return allauth_ratelimit.get_rates(app=APP, action=ACTION, config=_config(per))


def _no_request() -> HttpRequest:
    """allauth's key functions take the request for per-IP and per-user rates; the
    per-account ones below never read it (the Members page and its unlock name another
    person, whose address is unknown)."""
    return HttpRequest()


def mfa_key(user_id: int) -> str:
    """The per-person key of `login_failed` that allauth.mfa counts wrong two-factor codes
    under (`allauth.mfa.base.internal.flows.check_rate_limit`): after SIGN_IN_FAILURE_LIMIT
    wrong codes the person cannot finish signing in either."""
    return f"mfa-auth-user-{user_id}"


def _person_keys(user: User) -> tuple[str, str]:
    """A person's two per-account counters: wrong passwords and wrong two-factor codes."""
    return sign_in_key(user.username), mfa_key(user.pk)


def _failures(keys: list[str]) -> dict[str, int]:
    """Recent failures per per-account key, in one cache read per rate."""
    request = _no_request()
    now = time.time()
    found: dict[str, int] = {}
    for rate in _rates("key"):
        cache_keys = {
            allauth_ratelimit.get_cache_key(
                request, app=APP, action=ACTION, rate=rate, key=key
            ): key
            for key in keys
        }
        for cache_key, history in cache.get_many(list(cache_keys)).items():
            _, recent = allauth_ratelimit.apply_rate(list(history), now, rate, dry_run=True)
            key = cache_keys[cache_key]
            found[key] = max(found.get(key, 0), len(recent))
    return found


def locked_usernames(users: Sequence[User]) -> set[str]:
    """Which of these people cannot sign in right now: too many wrong passwords, or too many
    wrong two-factor codes."""
    failures = _failures([key for user in users for key in _person_keys(user)])
    return {
        user.username
        for user in users
        if any(failures.get(key, 0) >= settings.SIGN_IN_FAILURE_LIMIT for key in _person_keys(user))
    }


def recent_failures(user: User) -> int:
    """The person's recent wrong passwords and wrong two-factor codes, together."""
    failures = _failures(list(_person_keys(user)))
    return sum(failures.get(key, 0) for key in _person_keys(user))


def unlock(user: User) -> None:
    """Forget the person's failed sign-ins and wrong two-factor codes (not the per-IP
    counters of anyone's address)."""
    for key in _person_keys(user):
        allauth_ratelimit.clear(
            _no_request(), app=APP, action=ACTION, config=_config("key"), key=key
        )


def limit_reached(request: HttpRequest, username: str) -> str | None:
    """After a failed sign-in: IP_LIMITED or ACCOUNT_LOCKED if the next try will be refused."""
    for per, reason in (("ip", IP_LIMITED), ("key", ACCOUNT_LOCKED)):
        if _rates(per) and not allauth_ratelimit.consume(
            request,
            app=APP,
            action=ACTION,
            config=_config(per),
            key=sign_in_key(username),
            dry_run=True,
        ):
            return reason
    return None


def locked_out_response(request: HttpRequest, *, ip_limited: bool) -> HttpResponse:
    """The lock page, saying which lock it is and who can help."""
    context: dict[str, Any] = {
        "ip_limited": ip_limited,
        "failure_limit": settings.SIGN_IN_FAILURE_LIMIT,
        "cooloff_minutes": round(settings.SIGN_IN_COOLOFF_SECONDS / 60),
        "ip_window_minutes": round(settings.LOGIN_IP_WINDOW_SECONDS / 60),
    }
    return render(request, "registration/locked_out.html", context, status=429)
