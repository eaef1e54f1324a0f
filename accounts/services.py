"""Personal account operations: changing one's password (audited, and limited like sign-in)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import record

from .models import PasswordChangeFailure, User

PASSWORD_CHANGED = "account.password_changed"
WRONG_CURRENT_PASSWORD = "wrong current password"
NEW_PASSWORD_REFUSED = "new password refused"
TOO_MANY_ATTEMPTS = "too many wrong current passwords"


def password_change_window() -> timedelta:
    return timedelta(seconds=settings.PASSWORD_CHANGE_COOLOFF_SECONDS)


def wrong_current_passwords(user: User) -> int:
    """Wrong current passwords given at password change within the window, since the last
    successful change (which clears them)."""
    since = timezone.now() - password_change_window()
    return PasswordChangeFailure.objects.filter(user=user, created_at__gte=since).count()


def password_change_locked(user: User) -> bool:
    return wrong_current_passwords(user) >= settings.PASSWORD_CHANGE_FAILURE_LIMIT


def _record(user: User, outcome: str, reason: str = "") -> None:
    record(
        PASSWORD_CHANGED,
        actor=user,
        target_type="user",
        target_id=user.pk,
        target_label=user.username,
        outcome=outcome,
        details={"reason": reason} if reason else {},
    )


def change_password(*, actor: User, new_password: str) -> User:
    """Set the new password; the change and its audit event commit together."""
    with transaction.atomic():
        actor.set_password(new_password)
        actor.save(update_fields=["password"])
        PasswordChangeFailure.objects.filter(user=actor).delete()
        _record(actor, Outcome.SUCCESS)
    return actor


def record_password_change_refused(*, actor: User, reason: str) -> None:
    """A refused change: a wrong current password (counted by the limit), a new password the
    validators refused, or the limit itself (denied). Never records a password."""
    outcome = Outcome.DENIED if reason == TOO_MANY_ATTEMPTS else Outcome.FAILURE
    with transaction.atomic():
        if reason == WRONG_CURRENT_PASSWORD:
            now = timezone.now()
            stale = PasswordChangeFailure.objects.filter(
                user=actor, created_at__lt=now - password_change_window()
            )
            stale.delete()
            PasswordChangeFailure.objects.create(user=actor, created_at=now)
        _record(actor, outcome, reason)
