"""Two-factor in a real browser: an authenticator app (TOTP codes computed in the test, as
the app would) and a passkey through Chromium's virtual authenticator over the DevTools
protocol (WebAuthn.enable / WebAuthn.addVirtualAuthenticator): enrolled, used for a
passwordless sign-in, then as the second step after a password. No CSP violation or script
error on the way."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit.models import AuditEvent
from tests.accounts.mfa_support import totp_code
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def sign_out(browser_page: Any) -> None:
    page = browser_page.page
    page.locator(".nav-user > summary").click()
    with page.expect_navigation():
        page.locator(".nav-user").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")


def assert_clean(browser_page: Any) -> None:
    assert not browser_page.csp_violations, browser_page.csp_violations
    assert not browser_page.script_errors, browser_page.script_errors


def test_totp_enrolment_then_sign_in_with_a_code(open_page: Any, owner: Any) -> None:
    browser_page = open_page()
    page = browser_page.page
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("mfa_index"))
    expect(page.locator(".badge-warning")).to_have_text("Two-factor off")
    page.get_by_role("link", name="Set up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up an authenticator app")
    expect(page.locator("img.totp-qr")).to_be_visible()
    page.get_by_text("Type the setup key instead").click()
    secret = page.locator(".totp-secret").inner_text().strip()
    page.get_by_label("Code").fill(totp_code(secret))
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Recovery codes")
    expect(page.locator("#recovery_codes li")).to_have_count(10)
    assert_clean(browser_page)

    sign_out(browser_page)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
    page.get_by_label("Code").fill("000000")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify and sign in").click()
    expect(page.locator(".alert-error")).to_contain_text("Incorrect code")
    page.get_by_label("Code").fill(totp_code(secret, offset=1))
    with page.expect_navigation():
        page.get_by_role("button", name="Verify and sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Studio")
    assert_clean(browser_page)
    assert AuditEvent.objects.filter(action="mfa.code_failed", actor=owner.user).count() == 1


def test_passkey_enrolment_then_passwordless_sign_in(open_page: Any, owner: Any, settings) -> None:
    # http://localhost is a secure context for the browser; fido2 must accept it too.
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
    browser_page = open_page()
    page = browser_page.page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("mfa_add_webauthn"))
    page.get_by_label("Name").fill("Work laptop")
    page.get_by_label("Also sign in with it, without a password").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Add passkey").click()
    # The first authenticator comes with recovery codes.
    expect(page.get_by_role("heading", level=1)).to_have_text("Recovery codes")
    browser_page.goto(reverse("mfa_list_webauthn"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Work laptop")
    expect(page.locator("tbody tr")).to_contain_text("signs in without a password")
    assert_clean(browser_page)

    sign_out(browser_page)
    browser_page.goto(reverse("accounts:login"))
    with page.expect_navigation(url=f"**{reverse('teams:overview', args=[owner.team.slug])}"):
        page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Studio")
    assert_clean(browser_page)
    event = AuditEvent.objects.get(action="auth.passkey_sign_in")
    assert event.actor == owner.user
    assert event.details["name"] == "Work laptop"

    # The same passkey as the second step after a password.
    sign_out(browser_page)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
    with page.expect_navigation(url=f"**{reverse('teams:overview', args=[owner.team.slug])}"):
        page.get_by_role("button", name="Use a passkey or security key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Studio")
    assert_clean(browser_page)
