"""The one <dialog>: htmx loads a confirmation into it, and it closes by button, Escape or
a successful submit."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from accounts.models import ApiKey
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def _is_open(page: Any) -> bool:
    return bool(page.evaluate("document.getElementById('modal').open"))


def test_confirmation_dialog_opens_closes_and_submits(open_page: Any, owner: Any) -> None:
    ApiKey.objects.create(owner=owner.user, label="Build machine", last_four="9f2c")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("api_keys"))
    page = browser_page.page
    revoke = page.get_by_role("link", name="Revoke Build machine")

    # Opens with the confirmation, without leaving the page.
    revoke.click()
    page.wait_for_selector("#modal[open]")
    assert page.url.endswith(reverse("api_keys"))
    dialog = page.locator("#modal")
    assert "Revoke “Build machine”?" in dialog.inner_text()
    assert dialog.get_attribute("aria-labelledby") == "modal-title"

    # The cancel button closes it and empties it.
    dialog.locator("[data-close-dialog]").click()
    page.wait_for_function("!document.getElementById('modal').open")
    assert page.inner_html("#modal-content") == ""

    # Escape closes it too (native).
    revoke.click()
    page.wait_for_selector("#modal[open]")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('modal').open")

    # Confirming submits the plain form inside the dialog.
    revoke.click()
    page.wait_for_selector("#modal[open]")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Revoke key").click()
    assert not _is_open(page)
    assert page.locator(".alert-success").count() == 1
    assert page.get_by_role("link", name="Revoke Build machine").count() == 0
    assert ApiKey.objects.get(label="Build machine").revoked_at is not None
    assert browser_page.csp_violations == []
    assert browser_page.script_errors == []


def test_flash_messages_can_be_dismissed(open_page: Any, owner: Any) -> None:
    ApiKey.objects.create(owner=owner.user, label="Old key", last_four="0000")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    # Without script, the confirmation is a page of its own.
    key = ApiKey.objects.get(label="Old key")
    browser_page.goto(reverse("api_key_revoke", args=[key.pk]))
    page = browser_page.page
    assert not _is_open(page)
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_selector(".messages .alert")
    page.get_by_role("button", name="Dismiss message").first.click()
    assert page.locator(".messages .alert").count() == 0


def test_expired_session_goes_to_sign_in_instead_of_filling_the_dialog(
    open_page: Any, owner: Any
) -> None:
    ApiKey.objects.create(owner=owner.user, label="Build machine", last_four="9f2c")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("api_keys"))
    page = browser_page.page
    page.context.clear_cookies()  # the session is gone
    page.get_by_role("link", name="Revoke Build machine").click()
    page.wait_for_url(lambda url: f"{reverse('login')}?next=" in url)
    assert not _is_open(page)
    assert page.get_by_role("button", name="Sign in").is_visible()
