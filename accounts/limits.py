"""Limits on guessing passwords, beyond django-axes' username + IP lockout.

Sign-in, per IP across usernames (password spraying). django-axes locks a username + IP pair
after AXES_FAILURE_LIMIT failures; one address can still try four passwords on *every*
account. axes can also lock by IP alone (AXES_LOCKOUT_PARAMETERS), but it has a single failure
limit and a single cool-off for every parameter combination: five failures from one office NAT
would then lock the whole office out for 15 minutes. So the IP limit is our own, with its own
numbers (about 50 failures an hour, CONVAI_ADMIN_LOGIN_IP_LIMIT), counted from axes' own
AccessFailureLog (AXES_ENABLE_ACCESS_FAILURE_LOG): one row per failed sign-in with its IP and
time, in the database, so every worker process sees the same count and a restart forgets
nothing. `SignInLimitBackend` refuses before any password is checked, the way axes' backend
does, and axes' middleware answers with our lockout page (AXES_LOCKOUT_CALLABLE).

Password change, per user: the current password is the secret being guessed, by whoever holds
a session. Wrong current passwords are audited (`account.password_changed`, failure) and
counted in their own table (accounts.models.PasswordChangeFailure): the limit reads its
counter, never the audit log's details.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessFailureLog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

IP_LIMITED = "sign_in_ip_limited"


def ip_failures(ip_address: str, *, now: Any = None) -> int:
    """Failed sign-ins from this address, for any username, within the IP window."""
    since = (now or timezone.now()) - timedelta(seconds=settings.LOGIN_IP_WINDOW_SECONDS)
    return AccessFailureLog.objects.filter(ip_address=ip_address, attempt_time__gte=since).count()


def ip_limit_reached(request: HttpRequest) -> bool:
    AxesProxyHandler.update_request(request)
    ip_address = getattr(request, "axes_ip_address", None)
    if not ip_address or settings.LOGIN_IP_FAILURE_LIMIT <= 0:
        return False
    return ip_failures(ip_address) >= settings.LOGIN_IP_FAILURE_LIMIT


class SignInLimitBackend(AxesStandaloneBackend):
    """axes' backend plus the per-IP limit. First in AUTHENTICATION_BACKENDS: it authenticates
    nobody, it only refuses (PermissionDenied stops Django from trying the next backends)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if getattr(settings, "AXES_ENABLED", True) and request and ip_limit_reached(request):
            setattr(request, IP_LIMITED, True)
            request.axes_locked_out = True  # type: ignore[attr-defined]
            raise AxesBackendPermissionDenied("Too many failed sign-ins from this address")
        return super().authenticate(request, username, password, **kwargs)


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the lock page, saying which lock it is and who can help."""
    ip_limited = bool(getattr(request, IP_LIMITED, False))
    context = {
        "ip_limited": ip_limited,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": round(settings.AXES_COOLOFF_TIME * 60),
        "ip_window_minutes": round(settings.LOGIN_IP_WINDOW_SECONDS / 60),
    }
    return render(
        request,
        "registration/locked_out.html",
        context,
        status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429),
    )


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str:
    """AXES_USERNAME_CALLABLE: the username tried. allauth passes `username` in the credentials;
    its sign-in form posts it as `login`."""
    if credentials and credentials.get("username"):
        return str(credentials["username"])
    return str(request.POST.get("login") or request.POST.get("username") or "")
