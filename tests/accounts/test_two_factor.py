"""Two-factor with an authenticator app (TOTP) and recovery codes, through allauth: enrolment,
sign-in with a code, wrong codes (audited, limited), recovery codes, removal (ends the other
sessions). No secret (seed, code, recovery code) reaches an audit event."""

from __future__ import annotations

import json

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from accounts import services
from audit.models import AuditEvent, Outcome
from tests.accounts.mfa_support import enable_totp, has_totp, totp_code
from tests.factories import TEST_PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str = TEST_PASSWORD):
    return client.post(reverse("accounts:login"), {"login": username, "password": password})


def everything_audited() -> str:
    rows = AuditEvent.objects.values(
        "action", "actor_label", "target_id", "target_label", "details"
    )
    return json.dumps(list(rows), default=str)


@pytest.fixture
def member():
    return MembershipFactory()


def test_enrolment_shows_a_qr_code_and_turns_on_with_a_valid_code(
    client, member, django_capture_on_commit_callbacks
) -> None:
    user = member.user
    assert sign_in(client, user.username).status_code == 302  # a fresh sign-in: no re-auth
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in html  # the QR code, an image (strict CSP)
    secret = page.context["form"].secret
    # A wrong code keeps the page and says so; nothing is turned on.
    wrong = client.post(reverse("mfa_activate_totp"), {"code": "000000"})
    assert wrong.status_code == 200
    assert "Incorrect code" in wrong.content.decode()
    assert not has_totp(user)
    # allauth sends its "added" signal once the enrolment commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_view_recovery_codes")
    assert has_totp(user)
    enrolled = AuditEvent.objects.filter(action=services.MFA_ENROLLED, actor=user)
    assert sorted(enrolled.values_list("details__authenticator", flat=True)) == [
        "recovery_codes",
        "totp",
    ]
    codes = client.get(reverse("mfa_view_recovery_codes"))
    unused = codes.context["unused_codes"]
    assert len(unused) == 10 and all(code in codes.content.decode() for code in unused)
    audited = everything_audited()
    assert secret not in audited
    assert not any(code in audited for code in unused)


def test_sign_in_asks_for_the_code_after_the_password(client, member) -> None:
    user = member.user
    secret, _codes = enable_totp(user)
    response = sign_in(client, user.username)
    assert response["Location"] == reverse("mfa_authenticate")
    page = client.get(reverse("mfa_authenticate")).content.decode()
    assert "Use a passkey" not in page  # none added: the page does not offer one
    # Not signed in yet: a team page still sends to sign-in.
    assert client.get(reverse("teams:home"))["Location"].startswith(reverse("accounts:login"))
    done = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert done.status_code == 302
    home = client.get(reverse("teams:home"))
    assert home["Location"] == reverse("teams:overview", args=[member.team.slug])
    assert AuditEvent.objects.filter(action="auth.sign_in", actor=user).count() == 1


def test_a_wrong_code_is_refused_and_audited_without_the_code(client, member) -> None:
    user = member.user
    enable_totp(user)
    sign_in(client, user.username)
    response = client.post(reverse("mfa_authenticate"), {"code": "123456"})
    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()
    event = AuditEvent.objects.get(action=services.MFA_CODE_FAILED)
    assert (event.actor, event.outcome) == (user, Outcome.FAILURE)
    assert event.details == {"authenticator": "totp", "reauthentication": False}
    assert "123456" not in everything_audited()


def test_wrong_codes_are_limited_per_account(client, member) -> None:
    """allauth's login_failed limit (10 per 15 minutes per account) covers two-factor codes:
    after it even the right code is refused, so six digits cannot be guessed."""
    user = member.user
    secret, _codes = enable_totp(user)
    sign_in(client, user.username)
    for _ in range(10):
        client.post(reverse("mfa_authenticate"), {"code": "000000"})
    refused = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert refused.status_code == 200
    assert "Too many failed login attempts" in refused.content.decode()
    assert client.get(reverse("teams:home"))["Location"].startswith(reverse("accounts:login"))


def test_a_recovery_code_signs_in_once_and_is_audited(client, member) -> None:
    user = member.user
    _secret, codes = enable_totp(user)
    sign_in(client, user.username)
    assert client.post(reverse("mfa_authenticate"), {"code": codes[0]}).status_code == 302
    event = AuditEvent.objects.get(action=services.MFA_RECOVERY_CODE_USED)
    assert event.actor == user
    assert codes[0] not in everything_audited()
    # The same code does not work twice.
    other = Client()
    sign_in(other, user.username)
    again = other.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert again.status_code == 200


def test_turning_totp_off_is_audited_and_ends_the_other_sessions(client, member) -> None:
    user = member.user
    secret, _codes = enable_totp(user)
    laptop, phone = client, Client()
    for device, offset in ((laptop, 0), (phone, -1)):
        sign_in(device, user.username)
        device.post(reverse("mfa_authenticate"), {"code": totp_code(secret, offset=offset)})
        assert device.get(reverse("teams:home")).status_code == 302
    page = laptop.get(reverse("mfa_deactivate_totp"))
    assert page.status_code == 200
    assert laptop.post(reverse("mfa_deactivate_totp")).status_code == 302
    assert not Authenticator.objects.filter(user=user).exists()  # recovery codes go too
    removed = AuditEvent.objects.filter(action=services.MFA_REMOVED, actor=user)
    assert sorted(removed.values_list("details__authenticator", flat=True)) == [
        "recovery_codes",
        "totp",
    ]
    ended = AuditEvent.objects.get(action=services.SESSIONS_ENDED, actor=user)
    assert ended.details == {"reason": "two-factor removed", "sessions": 1}
    # The phone is signed out; the laptop that turned it off is not.
    assert phone.get(reverse("teams:home"))["Location"].startswith(reverse("accounts:login"))
    assert laptop.get(reverse("teams:home"))["Location"] == reverse(
        "teams:overview", args=[member.team.slug]
    )


def test_the_security_page_lists_what_is_on(client, member) -> None:
    user = member.user
    enable_totp(user)
    client.force_login(user)
    html = client.get(reverse("mfa_index")).content.decode()
    assert "Two-factor on" in html
    assert reverse("mfa_deactivate_totp") in html
    assert reverse("mfa_add_webauthn") in html
    assert "10 unused codes left" in html


@pytest.mark.stale_sign_in
def test_revealing_recovery_codes_asks_to_confirm_it_is_you(client, member) -> None:
    user = member.user
    _secret, codes = enable_totp(user)
    client.force_login(user)  # a session without a recent sign-in
    response = client.get(reverse("mfa_view_recovery_codes"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert codes[0] not in response.content.decode()
