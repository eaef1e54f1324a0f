"""Signal receivers that feed the audit log: sign-in, sign-out, failed sign-in, lockout, and
allauth's two-factor, passkey and password reset events (recorded by accounts.services)."""

from __future__ import annotations

import time
from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import Outcome
from audit.services import record

from . import services
from .models import User


@receiver(user_logged_in)
def _signed_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    record(
        "auth.sign_in",
        actor=user,
        target_type="user",
        target_id=user.pk,
        target_label=user.username,
    )


@receiver(account_signals.user_logged_in)
def _session_started(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """allauth recorded this session for the Sessions page: from now on its "last seen" is
    kept (accounts.middleware.SessionLastSeenMiddleware)."""
    request.session[services.LAST_SEEN_SESSION_KEY] = time.time()


@receiver(user_logged_out)
def _signed_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    if user is None:
        return
    record(
        "auth.sign_out",
        actor=user,
        target_type="user",
        target_id=user.pk,
        target_label=user.username,
    )


def _attempted_username(credentials: dict[str, Any]) -> str:
    return str(credentials.get("username") or "")[:150]


@receiver(user_login_failed)
def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = _attempted_username(credentials)
    record(
        "auth.sign_in",
        actor_label=username,
        target_type="user",
        target_label=username,
        outcome=Outcome.FAILURE,
        details={"username": username, "reason": "invalid credentials or locked out"},
    )


# --- django-allauth: two-factor, passkeys, password reset ------------------------------------


@receiver(mfa_signals.authenticator_added)
def _authenticator_added(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    services.record_authenticator_event(
        services.MFA_ENROLLED, actor=user, authenticator=authenticator
    )


@receiver(mfa_signals.authenticator_removed)
def _authenticator_removed(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    services.record_authenticator_event(
        services.MFA_REMOVED, actor=user, authenticator=authenticator
    )
    # A two-factor reset ends the person's other sessions, as a password change does (once:
    # the recovery codes that go with the last authenticator are removed in the same step).
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        return
    services.end_other_sessions(
        actor=user, keep_session_key=request.session.session_key, reason="two-factor removed"
    )


@receiver(mfa_signals.authenticator_reset)
def _authenticator_reset(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    services.record_authenticator_event(
        services.MFA_RECOVERY_CODES_REGENERATED, actor=user, authenticator=authenticator
    )


@receiver(mfa_signals.authenticator_used)
def _authenticator_used(
    sender: Any,
    request: HttpRequest,
    user: User,
    authenticator: Authenticator,
    reauthenticated: bool = False,
    passwordless: bool = False,
    **kwargs: Any,
) -> None:
    extra: dict[str, object] = {"reauthentication": bool(reauthenticated)}
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        services.record_authenticator_event(
            services.MFA_RECOVERY_CODE_USED, actor=user, authenticator=authenticator, extra=extra
        )
    elif passwordless:
        services.record_authenticator_event(
            services.PASSKEY_SIGN_IN, actor=user, authenticator=authenticator
        )


@receiver(mfa_signals.authentication_failed)
def _authentication_failed(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    services.record_authenticator_event(
        services.MFA_CODE_FAILED,
        actor=user,
        authenticator=authenticator,
        outcome=Outcome.FAILURE,
        extra={"reauthentication": bool(kwargs.get("reauthentication", False))},
    )


@receiver(account_signals.password_reset)
def _password_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    services.complete_password_reset(actor=user, keep_session_key=None)
