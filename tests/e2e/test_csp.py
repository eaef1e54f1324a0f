"""The strict CSP holds in a real browser: no page we serve triggers a violation."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def test_no_csp_violations_on_the_main_pages(open_page: Any, owner: Any) -> None:
    browser_page = open_page()
    browser_page.goto(reverse("accounts:login"))
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    slug = owner.team.slug
    page = browser_page.page
    for path in (
        reverse("teams:overview", args=[slug]),
        reverse("teams:members", args=[slug]),
        reverse("keys:list"),
        reverse("accounts:password-change"),
        "/no-such-page/",
    ):
        browser_page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.htmx") == "object", f"htmx not loaded on {path}"
        assert page.evaluate("document.documentElement.classList.contains('js')"), path
    page.locator(".team-switcher > summary").click()
    page.locator(".nav-user > summary").click()
    assert browser_page.csp_violations == []
    assert browser_page.script_errors == []


def test_violations_would_be_noticed(open_page: Any, owner: Any) -> None:
    """Guard the guard: an inline style really is refused, and the console says so."""
    browser_page = open_page()
    browser_page.goto(reverse("accounts:login"))
    page = browser_page.page
    # Wait for the console message itself, not for an amount of time.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')"
        )
    assert browser_page.csp_violations
