"""Changing one's password: audited (success and failure, never the password), and wrong
current passwords are limited like sign-in (security finding 4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.services import PASSWORD_CHANGED
from audit.models import AuditEvent, Outcome
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "quiet-lantern-orbit-77"
WRONG = "not-my-password-42"


def change(client, old: str, new: str = NEW_PASSWORD):
    return client.post(
        reverse("accounts:password-change"),
        {"oldpassword": old, "password1": new, "password2": new},
    )


@pytest.fixture
def user(client):
    user = UserFactory()
    client.force_login(user)
    return user


def events(user):
    return AuditEvent.objects.filter(action=PASSWORD_CHANGED, actor=user).order_by("id")


def test_a_change_is_audited_without_the_password(client, user) -> None:
    response = change(client, TEST_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password-change-done")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    (event,) = events(user)
    assert (event.outcome, event.target_type, event.target_id) == (
        Outcome.SUCCESS,
        "user",
        str(user.pk),
    )
    assert NEW_PASSWORD not in str(event.details) and TEST_PASSWORD not in str(event.details)
    # This device stays signed in.
    assert client.get(reverse("accounts:password-change")).status_code == 200


def test_a_wrong_current_password_is_audited_as_a_failure(client, user) -> None:
    response = change(client, WRONG)
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    (event,) = events(user)
    assert event.outcome == Outcome.FAILURE
    assert event.details == {"reason": "wrong current password"}
    assert WRONG not in str(event.details) and NEW_PASSWORD not in str(event.details)


def test_a_refused_new_password_is_audited_as_a_failure(client, user) -> None:
    response = change(client, TEST_PASSWORD, new="short")
    assert response.status_code == 200
    (event,) = events(user)
    assert (event.outcome, event.details) == (Outcome.FAILURE, {"reason": "new password refused"})
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


def test_five_wrong_current_passwords_pause_the_form_for_fifteen_minutes(
    client, user, monkeypatch
) -> None:
    for _ in range(5):
        assert "entered incorrectly" in change(client, WRONG).content.decode()
    # Now even the right current password is refused, with a clear message.
    response = change(client, TEST_PASSWORD)
    assert response.status_code == 200
    page = response.content.decode()
    assert (
        "Too many wrong current passwords: changing your password is paused for 15 minutes." in page
    )
    assert "entered incorrectly" not in page  # no oracle while paused
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)
    refused = events(user).last()
    assert (refused.outcome, refused.details) == (
        Outcome.DENIED,
        {"reason": "too many wrong current passwords"},
    )
    # After the window (audit events are append-only: move the clock instead) it works again.
    later = timezone.now() + timedelta(minutes=16)
    monkeypatch.setattr("accounts.services.timezone.now", lambda: later)
    assert change(client, TEST_PASSWORD).status_code == 302


def test_the_limit_is_per_user(client, user) -> None:
    for _ in range(5):
        change(client, WRONG)
    other = UserFactory()
    client.force_login(other)
    assert change(client, TEST_PASSWORD).status_code == 302


def test_a_successful_change_starts_the_count_again(client, user) -> None:
    for _ in range(4):
        change(client, WRONG)
    assert change(client, TEST_PASSWORD).status_code == 302
    for _ in range(4):
        change(client, WRONG)
    assert change(client, NEW_PASSWORD, new="another-quiet-lantern-88").status_code == 302


def test_the_limit_counts_wrong_passwords_not_audit_details(client, user) -> None:
    """The limit has its own counter: audit events that merely read like wrong passwords (the
    log is a record, not the limit's state) pause nothing."""
    from audit.services import record

    for _ in range(5):
        record(
            PASSWORD_CHANGED,
            actor=user,
            target_type="user",
            target_id=user.pk,
            target_label=user.username,
            outcome=Outcome.FAILURE,
            details={"reason": "wrong current password"},
        )
    assert change(client, TEST_PASSWORD).status_code == 302
