"""Password spraying (security finding 5): besides the per-account lockout, one address gets
about 50 failed sign-ins an hour across all usernames (allauth's login_failed, per IP)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SPRAYER = "203.0.113.7"


def sign_in(client, username: str, password: str, ip: str = SPRAYER):
    return client.post(
        reverse("accounts:login"), {"login": username, "password": password}, REMOTE_ADDR=ip
    )


def ip_limit(settings, limit: int) -> None:
    """ACCOUNT_RATE_LIMITS as settings.py builds it from CONVAI_ADMIN_LOGIN_IP_LIMIT."""
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login_failed": f"{limit}/3600s/ip,5/900s/key",
    }


def test_one_address_is_stopped_after_the_limit_across_usernames(client, settings) -> None:
    ip_limit(settings, 6)
    victims = [UserFactory() for _ in range(4)]
    # Below the per-account limit for every account: 2 tries each, 6 in all.
    tries = [victim for victim in victims[:3] for _ in range(2)]
    for victim in tries[:-1]:
        assert sign_in(client, victim.username, "Summer2025!").status_code == 200
    # The sixth failure reaches the limit: the lock page says so at once.
    reached = sign_in(client, tries[-1].username, "Summer2025!")
    assert reached.status_code == 429
    assert "from your network" in reached.content.decode()
    assert AuditEvent.objects.filter(action="auth.lockout", details__scope="ip").exists()
    # The next try from that address is refused, even with the right password of an
    # account it never tried, without checking the password.
    response = sign_in(client, victims[3].username, TEST_PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins from your network; try again in an hour." in page
    assert "Members page" not in page  # an Admin cannot lift this one; only waiting helps
    # Another address is not affected.
    assert (
        sign_in(client, victims[3].username, TEST_PASSWORD, ip="198.51.100.20").status_code == 302
    )


def test_the_limit_counts_only_the_last_hour(client, settings, monkeypatch) -> None:
    ip_limit(settings, 3)
    user = UserFactory()
    for name in ("a", "b", "c"):
        sign_in(client, name, "wrong-password")
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 429
    later = time.time() + 61 * 60
    monkeypatch.setattr(
        "allauth.core.internal.ratelimit.time",
        SimpleNamespace(time=lambda: later, monotonic=time.monotonic, sleep=time.sleep),
    )
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 302


def test_the_limit_defaults_to_about_fifty_an_hour_and_is_configurable() -> None:
    from tests.support.manage import PROD_ENV, run_manage

    script = (
        "from django.conf import settings as s; "
        "print(s.ACCOUNT_RATE_LIMITS['login_failed'].split(',')[0].split('/')[0])"
    )
    default = run_manage("shell", "-c", script, env=PROD_ENV)
    assert default.stdout.split()[-1] == "50", default.stderr
    custom = run_manage(
        "shell", "-c", script, env={**PROD_ENV, "CONVAI_ADMIN_LOGIN_IP_LIMIT": "20"}
    )
    assert custom.stdout.split()[-1] == "20", custom.stderr
