"""Drift that shows itself, in a real browser, against the sandbox on the live server over
HTTP: a character edited in Convai's playground (the sandbox, directly) is found by the
periodic drift check with nobody acting; the list shows the badge and filters on it; the
detail page offers "Review changes" with the diff, and "Take Convai's version" stores it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from characters import drift
from teams.models import Membership
from tests.e2e.support import (
    AddKey,
    arrived,
    clean,
    detail_url,
    fits_phone,
    flash,
    list_url,
    make_character,
    remote,
    signed_in,
)

pytestmark = pytest.mark.e2e


def test_a_change_made_in_convai_is_flagged_reviewed_and_taken(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    api_key, _ = add_key(owner, "Studio key")
    character = make_character(owner, api_key, "Raymond")
    make_character(owner, api_key, "Unchanged")
    playground = remote(character)
    playground.character_name = "Raymond (playground)"
    playground.backstory += "\nA line written in the playground."
    playground.save()
    with override_settings(CONVAI_ADMIN_DRIFT_CHECK_MINUTES=30):
        assert "1 newly changed" in drift.check_drift()

    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(list_url(owner))
    row = page.locator(f"#character-{character.pk}")
    expect(row.get_by_text("Changed in Convai")).to_be_visible()
    rows = page.locator("#character-results tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Only characters changed in Convai").check()  # htmx swaps the results
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Raymond")

    browser_page.goto(detail_url(character))
    panel = page.locator("#changed-in-convai")
    expect(panel).to_contain_text("Changed in Convai since")
    page.get_by_text("Review changes").click()
    expect(panel).to_contain_text("Raymond (playground)")
    expect(panel).to_contain_text("A line written in the playground.")
    fits_phone(browser_page)
    panel.get_by_role("button", name="Take Convai's version").click()
    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_be_visible()
    expect(page.locator("#changed-in-convai")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Raymond (playground)")
    clean(browser_page)
