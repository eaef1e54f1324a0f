"""Signing in through the real form: success and a wrong password. (The lockout is tested
once, in tests/accounts/test_auth.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def test_sign_in_lands_on_the_team_page(open_page: Any, owner: Any) -> None:
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page
    assert page.url == browser_page.base_url + reverse("teams:overview", args=[owner.team.slug])
    assert page.get_by_role("heading", level=1).inner_text() == "Northwind Studio"
    nav = page.get_by_role("navigation", name="Main", exact=True)
    assert nav.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    assert nav.get_by_role("link", name="Members").get_attribute("aria-current") is None
    assert not browser_page.csp_violations
    assert not browser_page.script_errors


def test_wrong_password_shows_an_error_and_keeps_the_username(open_page: Any, owner: Any) -> None:
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, "not-the-password")
    page = browser_page.page
    assert page.url.startswith(browser_page.base_url + reverse("accounts:login"))
    alert = page.locator(".alert-error")
    assert "correct username and password" in alert.inner_text()
    assert page.get_by_label("Username").input_value() == owner.user.username
    assert page.locator(".topbar").count() == 0
