"""The security probe's classes on the account pages allauth brought: CSRF on every POST,
someone else's authenticator IDs, and secrets (TOTP seed, codes, recovery codes, reset key)
kept out of the server log."""

from __future__ import annotations

import logging
import re

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.accounts.mfa_support import enable_totp, totp_code
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

POSTS = [
    ("accounts:login", {"login": "x", "password": "y"}),
    ("accounts:logout", {}),
    ("accounts:password-change", {"oldpassword": TEST_PASSWORD}),
    ("accounts:sessions", {}),
    ("account_reset_password", {"email": "a@example.test"}),
    ("account_reauthenticate", {"password": TEST_PASSWORD}),
    ("mfa_activate_totp", {"code": "123456"}),
    ("mfa_deactivate_totp", {}),
    ("mfa_generate_recovery_codes", {}),
    ("mfa_add_webauthn", {"name": "x"}),
    ("mfa_authenticate", {"code": "123456"}),
    ("mfa_reauthenticate", {"code": "123456"}),
    ("mfa_login_webauthn", {"credential": "{}"}),
]


@pytest.mark.parametrize(("url_name", "data"), POSTS, ids=[name for name, _ in POSTS])
def test_every_account_post_needs_the_csrf_token(url_name: str, data: dict) -> None:
    user = UserFactory()
    enable_totp(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    before = Authenticator.objects.count()
    response = client.post(reverse(url_name), data)
    assert response.status_code == 403
    assert Authenticator.objects.count() == before
    assert not AuditEvent.objects.exclude(action="auth.sign_in").exists()


def test_the_team_two_factor_switch_needs_the_csrf_token() -> None:
    owner = MembershipFactory(role="owner")
    enable_totp(owner.user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)
    url = reverse("teams:settings-two-factor", args=[owner.team.slug])
    assert client.post(url, {"required": "on"}).status_code == 403
    owner.team.refresh_from_db()
    assert not owner.team.require_two_factor


def test_someone_elses_passkey_is_a_404(client) -> None:
    mine, theirs = UserFactory(), UserFactory()
    theirs_key = Authenticator.objects.create(
        user=theirs, type=Authenticator.Type.WEBAUTHN, data={"name": "Their key"}
    )
    client.force_login(mine)
    remove = reverse("mfa_remove_webauthn", kwargs={"pk": theirs_key.pk})
    assert client.get(remove).status_code == 404
    assert client.post(remove).status_code == 404
    assert Authenticator.objects.filter(pk=theirs_key.pk).exists()


def test_no_secret_reaches_the_server_log(client, caplog, settings) -> None:
    settings.EMAIL_ENABLED = True
    caplog.set_level(logging.DEBUG)
    user = UserFactory()
    client.post(reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD})
    secret = client.get(reverse("mfa_activate_totp")).context["form"].secret
    client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    codes = Authenticator.objects.get(user=user, type="recovery_codes").wrap().get_unused_codes()
    stranger = Client()
    stranger.post(reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD})
    stranger.post(reverse("mfa_authenticate"), {"code": "654321"})
    stranger.post(reverse("mfa_authenticate"), {"code": codes[0]})
    Client().post(reverse("account_reset_password"), {"email": user.email})
    link = re.search(r"https?://[^/\s]+(/\S+)", mail.outbox[-1].body).group(1)
    key = link.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[1]
    log = caplog.text
    for value in (secret, codes[0], key, TEST_PASSWORD, "654321"):
        assert value not in log
