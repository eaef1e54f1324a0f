"""The one <dialog>: htmx loads a confirmation into it, and it closes by button, Escape or
a successful submit."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from keys.models import ApiKey
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def _is_open(page: Any) -> bool:
    return bool(page.evaluate("document.getElementById('modal').open"))


def test_confirmation_dialog_opens_closes_and_submits(open_page: Any, owner: Any) -> None:
    ApiKey.objects.create(owner=owner.user, label="Build machine", last_four="9f2c")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("keys:list"))
    page = browser_page.page
    revoke = page.get_by_role("link", name="Revoke Build machine")

    # Opens with the confirmation, without leaving the page.
    revoke.click()
    page.wait_for_selector("#modal[open]")
    assert page.url.endswith(reverse("keys:list"))
    dialog = page.locator("#modal")
    assert "Revoke “Build machine”?" in dialog.inner_text()
    assert dialog.get_attribute("aria-labelledby") == "modal-title"

    # The cancel button closes it and empties it. The dialog's "close" event (which empties
    # it) is dispatched after `open` turns false: wait for the emptied state itself.
    dialog.locator("[data-close-dialog]").click()
    expect(dialog).not_to_have_attribute("open", "")
    expect(page.locator("#modal-content")).to_be_empty()

    # Escape closes it too (native).
    revoke.click()
    page.wait_for_selector("#modal[open]")
    page.keyboard.press("Escape")
    expect(dialog).not_to_have_attribute("open", "")
    expect(page.locator("#modal-content")).to_be_empty()

    # Confirming submits the plain form inside the dialog.
    revoke.click()
    page.wait_for_selector("#modal[open]")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Revoke key").click()
    assert not _is_open(page)
    expect(page.locator(".alert-success")).to_have_count(1)
    expect(page.get_by_role("link", name="Revoke Build machine")).to_have_count(0)
    assert ApiKey.objects.get(label="Build machine").revoked_at is not None
    assert browser_page.csp_violations == []
    assert browser_page.script_errors == []


def test_flash_messages_can_be_dismissed(open_page: Any, owner: Any) -> None:
    ApiKey.objects.create(owner=owner.user, label="Old key", last_four="0000")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    # Without script, the confirmation is a page of its own.
    key = ApiKey.objects.get(label="Old key")
    browser_page.goto(reverse("keys:revoke", args=[key.pk]))
    page = browser_page.page
    assert not _is_open(page)
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_selector(".messages .alert")
    page.get_by_role("button", name="Dismiss message").first.click()
    expect(page.locator(".messages .alert")).to_have_count(0)


def test_expired_session_goes_to_sign_in_instead_of_filling_the_dialog(
    open_page: Any, owner: Any
) -> None:
    ApiKey.objects.create(owner=owner.user, label="Build machine", last_four="9f2c")
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("keys:list"))
    page = browser_page.page
    page.context.clear_cookies()  # the session is gone
    page.get_by_role("link", name="Revoke Build machine").click()
    page.wait_for_url(lambda url: f"{reverse('accounts:login')}?next=" in url)
    assert not _is_open(page)
    assert page.get_by_role("button", name="Sign in", exact=True).is_visible()
