"""Signal receivers that feed the audit log: sign-in, sign-out, failed sign-in, lockout."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import Outcome
from audit.services import record

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


@receiver(user_locked_out)
def _locked_out(
    sender: Any,
    request: HttpRequest | None,
    username: str | None,
    ip_address: str | None,
    **kwargs: Any,
) -> None:
    record(
        "auth.lockout",
        actor_label=(username or "")[:150],
        target_type="user",
        target_label=(username or "")[:150],
        outcome=Outcome.DENIED,
        details={"username": username or "", "ip_address": ip_address or ""},
    )
