"""The Sessions page (allauth.usersessions): each session's device and IP, and "sign out
everywhere else" (audited; this device stays). A password change ends the others at once."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from audit.models import AuditEvent
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user, agent: str, ip: str) -> Client:
    device = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    assert (
        device.post(
            reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD}
        ).status_code
        == 302
    )
    return device


def test_the_page_lists_each_device_and_signs_out_the_others() -> None:
    user = UserFactory()
    laptop = signed_in(user, "Firefox on Linux", "198.51.100.1")
    phone = signed_in(user, "Safari on iPhone", "198.51.100.2")
    html = laptop.get(reverse("accounts:sessions")).content.decode()
    assert "Firefox on Linux" in html and "Safari on iPhone" in html  # the raw agents, here
    assert "198.51.100.2" in html and "This device" in html
    response = laptop.post(reverse("accounts:sessions"), follow=True)
    assert "Signed out of 1 other session" in response.content.decode()
    assert phone.get(reverse("accounts:sessions"))["Location"].startswith(reverse("accounts:login"))
    assert laptop.get(reverse("accounts:sessions")).status_code == 200
    event = AuditEvent.objects.get(action=services.SESSIONS_ENDED)
    assert event.details == {"reason": "signed out everywhere else", "sessions": 1}


def test_a_password_change_ends_the_other_sessions_at_once() -> None:
    user = UserFactory()
    laptop = signed_in(user, "Firefox on Linux", "198.51.100.1")
    signed_in(user, "Safari on iPhone", "198.51.100.2")
    new = "quiet-lantern-orbit-77"
    laptop.post(
        reverse("accounts:password-change"),
        {"oldpassword": TEST_PASSWORD, "password1": new, "password2": new},
    )
    from allauth.usersessions.models import UserSession

    assert UserSession.objects.filter(user=user).count() == 1  # this device's only


def test_the_page_needs_a_sign_in(client) -> None:
    response = client.get(reverse("accounts:sessions"))
    assert response["Location"].startswith(reverse("accounts:login"))


def test_sign_out_everywhere_needs_the_csrf_token() -> None:
    user = UserFactory()
    device = Client(enforce_csrf_checks=True)
    device.force_login(user)
    assert device.post(reverse("accounts:sessions")).status_code == 403
    assert not AuditEvent.objects.filter(action=services.SESSIONS_ENDED).exists()


def test_last_seen_is_written_at_most_every_few_minutes() -> None:
    from allauth.usersessions.models import UserSession

    from accounts.services import LAST_SEEN_SESSION_KEY

    user = UserFactory()
    laptop = signed_in(user, "Firefox on Linux", "198.51.100.1")
    row = UserSession.objects.get(user=user)
    first_seen = row.last_seen_at
    url = reverse("accounts:password-change-done")
    laptop.get(url)
    assert UserSession.objects.get(pk=row.pk).last_seen_at == first_seen  # just signed in
    # Six minutes later (moved back in the session rather than waiting).
    session = laptop.session
    session[LAST_SEEN_SESSION_KEY] -= 360
    session.save()
    laptop.get(url, REMOTE_ADDR="198.51.100.9")
    row.refresh_from_db()
    assert row.last_seen_at > first_seen
    assert row.ip == "198.51.100.9"
    html = laptop.get(reverse("accounts:sessions")).content.decode()
    assert "Last seen" in html


@pytest.mark.parametrize(
    ("agent", "shown"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36 Edg/120.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Firefox on Linux",
        ),
        ("curl/8.0", "Unknown device"),
        ("", "Unknown device"),
    ],
)
def test_a_session_names_its_device(agent: str, shown: str) -> None:
    from accounts.templatetags.accounts_extras import device

    assert device(agent) == shown


def test_the_account_pages_cost_a_bounded_number_of_queries(django_assert_max_num_queries) -> None:
    from tests.accounts.mfa_support import enable_totp

    user = UserFactory()
    devices = [signed_in(user, f"Agent {n}", f"198.51.100.{n}") for n in range(1, 6)]
    enable_totp(user)
    # allauth's list checks that each session still exists and still signs its person in
    # (three reads per session): bounded by the sessions a person has, nothing else.
    with django_assert_max_num_queries(4 + 3 * len(devices)):
        assert b"Agent 5" in devices[0].get(reverse("accounts:sessions")).content
    with django_assert_max_num_queries(6):
        assert b"Two-factor on" in devices[0].get(reverse("mfa_index")).content
