"""History and restore in a real browser, against the sandbox on the live server over HTTP:
edit a character twice through the form, read its history with the backstory diff, compare
two versions, restore the first version through the dialog, and see it restored (on the page,
in the history and on Convai). Screenshots of the detail page with its history, the compare
page and the restore dialog go to /tmp/shots/e2e/ at 1280 and 390 px."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from teams.models import Membership
from tests.e2e.support import (
    BACKSTORY,
    AddKey,
    arrived,
    clean,
    detail_url,
    dialog,
    fits_phone,
    flash,
    make_character,
    remote,
    shoot,
    signed_in,
)

pytestmark = pytest.mark.e2e

SECOND = "Raymond is a retired lighthouse keeper.\nHe paints the sea at dawn."


def edit(browser_page: Any, character: Any, **fields: str) -> None:
    page = browser_page.page
    browser_page.goto(
        reverse("characters:character-edit", args=[character.team.slug, character.pk])
    )
    for label, value in fields.items():
        page.get_by_role("textbox", name=label).fill(value)
    page.get_by_role("button", name="Save changes").click()
    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_contain_text("Saved")


def test_edit_twice_read_the_history_then_restore_the_first_version(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    api_key, _ = add_key(owner, "Studio key")
    character = make_character(owner, api_key, "Raymond")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    edit(browser_page, character, Backstory=SECOND)
    edit(browser_page, character, Name="Captain Raymond")

    history = page.locator(".card-revisions")
    expect(history.locator(".history-entry")).to_have_count(3)
    newest = history.locator("#version-3")
    expect(newest).to_contain_text("Edited")
    expect(newest).to_contain_text("Current")
    expect(newest.locator(".change-sides")).to_contain_text("Captain Raymond")
    backstory = history.locator("#version-2 .diff-lines")
    expect(backstory.locator(".diff-del")).to_contain_text("He speaks slowly and loves storms.")
    expect(backstory.locator(".diff-add")).to_contain_text("He paints the sea at dawn.")
    expect(history.locator("#version-1")).to_contain_text("The first version recorded here.")
    expect(page.locator(".card-activity tbody tr")).to_have_count(3)
    fits_phone(browser_page)
    shoot(browser_page, "history-detail")

    # Compare the first and the latest version.
    history.get_by_role("link", name="Compare versions").click()
    page.get_by_label("From version").select_option("1")
    page.get_by_label("To version").select_option("3")
    expect(page.locator("#compare-result")).to_contain_text("Version 1 → version 3")
    expect(page.locator("#compare-result")).to_contain_text("2 fields differ")
    fits_phone(browser_page)
    shoot(browser_page, "history-compare")

    # Restore version 1 through the dialog.
    browser_page.goto(detail_url(character))
    history.locator("#version-1").get_by_role("link", name="Restore this version").click()
    modal = dialog(browser_page)
    expect(modal).to_be_visible()
    expect(modal.locator("#modal-title")).to_have_text("Restore version 1 of “Captain Raymond”?")
    expect(modal.locator(".diff-add")).to_contain_text("He speaks slowly and loves storms.")
    shoot(browser_page, "history-restore-dialog")
    modal.get_by_role("button", name="Restore version 1").click()

    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_contain_text("Restored version 1 of “Raymond”")
    expect(page.get_by_role("heading", level=1)).to_have_text("Raymond")
    expect(page.locator(".backstory")).to_have_text(BACKSTORY)
    newest = history.locator("#version-4")
    expect(newest).to_contain_text("Restored")
    expect(newest).to_contain_text("version 1")
    stored = remote(character)
    assert (stored.character_name, stored.backstory) == ("Raymond", BACKSTORY)
    clean(browser_page)
