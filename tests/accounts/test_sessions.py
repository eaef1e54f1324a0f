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
    assert "Firefox on Linux" in html and "Safari on iPhone" in html
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
