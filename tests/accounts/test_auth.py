"""Sign-in, sign-out, throttling, and their audit events."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str, ip: str = "198.51.100.10"):
    return client.post(
        reverse("accounts:login"), {"login": username, "password": password}, REMOTE_ADDR=ip
    )


def test_anonymous_is_sent_to_sign_in(client) -> None:
    response = client.get(reverse("teams:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_sign_in_records_success_and_lands_on_the_team(client) -> None:
    membership = MembershipFactory()
    response = sign_in(client, membership.user.username, TEST_PASSWORD)
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="auth.sign_in")
    assert event.outcome == Outcome.SUCCESS
    assert event.actor == membership.user
    assert event.ip_address == "198.51.100.10"
    home = client.get(reverse("teams:home"))
    assert home["Location"] == reverse("teams:overview", args=[membership.team.slug])


def test_failed_sign_in_is_recorded_without_the_password(client) -> None:
    user = UserFactory()
    response = sign_in(client, user.username, "wrong-password-123")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="auth.sign_in")
    assert event.outcome == Outcome.FAILURE
    assert event.details["username"] == user.username
    assert "wrong-password-123" not in str(event.details)


def test_five_failures_lock_the_account_for_fifteen_minutes(client, settings) -> None:
    """The one lockout test (the browser and the old UI shell test repeated it)."""
    user = UserFactory()
    for attempt in range(1, 6):
        response = sign_in(client, user.username, "nope-nope-nope")
        assert response.status_code == (429 if attempt == 5 else 200)
        if attempt < 5:
            assert 'class="alert alert-error"' in response.content.decode()
    locked = sign_in(client, user.username, TEST_PASSWORD)
    assert locked.status_code == 429
    assert client.get(reverse("teams:home")).status_code == 302, "even the right password"
    page = locked.content.decode()
    assert "Too many failed sign-ins; try again in 15 minutes." in page
    # The page says truthfully who can help: an Admin (or Owner) on the Members page.
    assert "can unlock it now from the team\N{RIGHT SINGLE QUOTATION MARK}s Members page" in page
    assert AuditEvent.objects.filter(action="auth.lockout", outcome=Outcome.DENIED).exists()
    # The lock is on the account: another address (a guesser's next proxy) is refused too,
    # whatever the case of the username typed.
    other_ip = sign_in(client, user.username.upper(), TEST_PASSWORD, ip="198.51.100.99")
    assert other_ip.status_code == 429
    # Another account from the same address is not affected.
    assert sign_in(client, UserFactory().username, TEST_PASSWORD).status_code == 302
    assert settings.SIGN_IN_COOLOFF_SECONDS == 15 * 60


def test_the_lock_ends_after_fifteen_minutes(client, monkeypatch) -> None:
    user = UserFactory()
    for _ in range(5):
        sign_in(client, user.username, "nope-nope-nope")
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 429
    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr(
        "allauth.core.internal.ratelimit.time",
        SimpleNamespace(time=lambda: later, monotonic=time.monotonic, sleep=time.sleep),
    )
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 302


def test_a_success_does_not_reset_the_count(client) -> None:
    """A right password between guesses gives the guesser no fresh tries: allauth takes back
    only the successful attempt, not the failures before it."""
    user = UserFactory()
    for _ in range(4):
        sign_in(client, user.username, "nope-nope-nope")
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 302
    client.logout()
    assert sign_in(client, user.username, "nope-nope-nope").status_code == 429


def test_sign_out_is_a_post_and_is_recorded(client) -> None:
    membership = MembershipFactory()
    client.force_login(membership.user)
    # A GET only asks "Sign out?" (a link or an image cannot sign anyone out)...
    confirm = client.get(reverse("accounts:logout"))
    assert confirm.status_code == 200
    assert b"Sign out?" in confirm.content
    assert client.get(reverse("teams:home"))["Location"] == reverse(
        "teams:overview", args=[membership.team.slug]
    ), "still signed in"
    assert not AuditEvent.objects.filter(action="auth.sign_out").exists()
    # ...the POST signs out.
    response = client.post(reverse("accounts:logout"), follow=True)
    assert response.redirect_chain[0] == (reverse("accounts:logged-out"), 302)
    assert b"You are signed out" in response.content
    assert client.get(reverse("teams:home"))["Location"].startswith(reverse("accounts:login"))
    assert AuditEvent.objects.filter(action="auth.sign_out", actor=membership.user).exists()


@pytest.mark.argon2
def test_passwords_are_stored_with_argon2id() -> None:
    user = UserFactory()
    assert user.password.startswith("argon2$argon2id$")


def test_user_without_a_team_is_asked_to_create_one(client) -> None:
    user = UserFactory()
    client.force_login(user)
    response = client.get(reverse("teams:home"))
    assert response["Location"] == reverse("teams:team-create")


def test_a_role_refusal_is_a_403_and_is_audited(client) -> None:
    viewer = MembershipFactory(role="viewer")
    client.force_login(viewer.user)
    response = client.get(reverse("teams:invitations", args=[viewer.team.slug]))
    assert response.status_code == 403
    event = AuditEvent.objects.get(outcome=Outcome.DENIED)
    assert event.action == "invitation.view"
    assert (event.team, event.actor) == (viewer.team, viewer.user)
    assert event.details["required"] == "admin"


def test_another_teams_page_is_a_404(client) -> None:
    mine, theirs = MembershipFactory(), MembershipFactory()
    client.force_login(mine.user)
    assert client.get(reverse("teams:members", args=[theirs.team.slug])).status_code == 404
