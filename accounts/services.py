"""Personal account operations: changing one's password (audited, and limited like sign-in),
ending one's other sessions."""

from __future__ import annotations

from datetime import timedelta

from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
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


SESSIONS_ENDED = "account.sessions_ended"
# When the session's "last seen" was last written (accounts.middleware).
LAST_SEEN_SESSION_KEY = "accounts_last_seen"


def touch_session(*, actor: User, session_key: str, ip: str | None) -> None:
    """The Sessions page's "last seen" and current IP of one of `actor`'s sessions. Not
    audited: it is a reading of activity, not an action."""
    changes: dict[str, object] = {"last_seen_at": timezone.now()}
    if ip:
        changes["ip"] = ip
    UserSession.objects.filter(user=actor, session_key=session_key).update(**changes)


def end_other_sessions(*, actor: User, keep_session_key: str | None, reason: str) -> int:
    """End every session of `actor` but the one with `keep_session_key` (the device asking):
    "sign out everywhere else", and what a password change or a two-factor reset does. The
    session rows go from the session store, so those devices are signed out at their next
    request. Audited with the count; never with a session key."""
    with transaction.atomic():
        others = list(UserSession.objects.filter(user=actor).exclude(session_key=keep_session_key))
        for session in others:
            session.end()
        record(
            SESSIONS_ENDED,
            actor=actor,
            target_type="user",
            target_id=actor.pk,
            target_label=actor.username,
            details={"reason": reason, "sessions": len(others)},
        )
    return len(others)


# Two-factor and password reset events (fed by allauth's signals, accounts/signals.py). None
# of them carries a secret: no TOTP seed, recovery code, WebAuthn credential or reset key, only
# what kind of authenticator it was and the name its owner gave it.
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
MFA_RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
MFA_CODE_FAILED = "mfa.code_failed"
MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used"
PASSKEY_SIGN_IN = "auth.passkey_sign_in"
PASSWORD_RESET_REQUESTED = "account.password_reset_requested"
PASSWORD_RESET = "account.password_reset"


def _authenticator_details(authenticator: Authenticator) -> dict[str, object]:
    details: dict[str, object] = {"authenticator": str(authenticator.type)}
    if authenticator.type == Authenticator.Type.WEBAUTHN:
        details["name"] = str(authenticator.wrap().name)[:100]
    return details


def record_authenticator_event(
    action: str,
    *,
    actor: User,
    authenticator: Authenticator,
    outcome: str = Outcome.SUCCESS,
    extra: dict[str, object] | None = None,
) -> None:
    record(
        action,
        actor=actor,
        target_type="authenticator",
        target_id=authenticator.pk or "",
        target_label=str(authenticator.type),
        outcome=outcome,
        details={**_authenticator_details(authenticator), **(extra or {})},
    )


def record_password_reset_requested(*, user: User) -> None:
    """A reset link was mailed to the account's address (never the link or its key)."""
    record(
        PASSWORD_RESET_REQUESTED,
        actor_label=user.username,
        target_type="user",
        target_id=user.pk,
        target_label=user.username,
    )


def record_sign_in_lockout(*, username: str, ip_address: str, scope: str) -> None:
    """Sign-in stopped for an account (scope "account") or a network address ("ip") after too
    many failures (accounts.limits)."""
    username = username[:150]
    record(
        "auth.lockout",
        actor_label=username,
        target_type="user",
        target_label=username,
        outcome=Outcome.DENIED,
        details={"username": username, "ip_address": ip_address, "scope": scope},
    )


def complete_password_reset(*, actor: User, keep_session_key: str | None) -> None:
    """After a reset: recorded, the limit's counter cleared, and every other session ends."""
    with transaction.atomic():
        PasswordChangeFailure.objects.filter(user=actor).delete()
        record(
            PASSWORD_RESET,
            actor=actor,
            target_type="user",
            target_id=actor.pk,
            target_label=actor.username,
        )
    end_other_sessions(actor=actor, keep_session_key=keep_session_key, reason="password reset")
