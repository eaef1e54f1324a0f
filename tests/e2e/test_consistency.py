"""Issue 12 §7 in a real browser: the error summary takes the focus, select all / none work,
a long backstory opens and closes without script, a long
unbroken name wraps at 390 px, and the count above the list follows a delete from it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from characters.bundles.schema import SCHEMA
from teams.models import Membership
from tests.e2e.conftest import PHONE
from tests.e2e.support import (
    AddKey,
    clean,
    detail_url,
    dialog,
    list_url,
    make_character,
    signed_in,
)
from tests.factories import CharacterFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_empty_submission_moves_the_focus_to_the_error_summary(
    open_page: Any, owner: Membership
) -> None:
    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(reverse("keys:list"))
    form = page.locator("form:has(#id_key)")
    form.evaluate("form => { form.noValidate = true; }")  # what the server says, not the browser
    with page.expect_navigation():
        form.get_by_role("button").last.click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("There are 2 problems")
    summary.get_by_role("link").first.click()
    expect(page.locator("#id_label")).to_be_focused()
    clean(browser_page)


def test_a_long_backstory_opens_and_closes(open_page: Any, owner: Membership) -> None:
    character = CharacterFactory.create(team=owner.team, backstory="A long life. " * 100)
    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(detail_url(character))
    preview = page.locator(".backstory-preview")
    whole = page.locator(".backstory-more .backstory")
    expect(preview).to_be_visible()
    expect(whole).to_be_hidden()
    page.get_by_text("Show the whole backstory").click()
    expect(whole).to_be_visible()
    expect(preview).to_be_hidden()
    page.get_by_text("Show less").click()
    expect(preview).to_be_visible()
    clean(browser_page)


def test_a_long_unbroken_name_wraps_at_390px(open_page: Any, owner: Membership) -> None:
    name = "Q" * 100
    character = CharacterFactory.create(team=owner.team, name=name)
    browser_page = signed_in(open_page, owner, PHONE)
    for path in (list_url(owner), detail_url(character)):
        browser_page.goto(path)
        assert browser_page.scroll_width() <= PHONE["width"], path


def test_select_all_and_none_on_the_bundle_preview(
    open_page: Any, owner: Membership, add_key: AddKey, tmp_path: Path, settings: Any
) -> None:
    settings.VAR_DIR = tmp_path
    add_key(owner, "Studio key")
    characters = [
        {
            "convai_id": f"guard-{n}",
            "name": f"Guard {n}",
            "voice_type": "GuyNeural",
            "backstory": "B.",
            "actions": ["Wave"],
            "language_codes": ["en-US"],
        }
        for n in (10, 2, 1)
    ]
    bundle = tmp_path / "guards.json"
    bundle.write_text(json.dumps({"schema": SCHEMA, "characters": characters}))
    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(reverse("bundles:import", args=[owner.team.slug]))
    page.get_by_label("Bundle file").set_input_files(str(bundle))
    page.get_by_role("button", name="Check the bundle").click()

    boxes = page.locator('input[data-select-group="bundle"]')
    expect(boxes).to_have_count(3)
    names = page.locator("tr[data-plan=create] .cell-primary").all_inner_texts()
    assert names == ["Guard 1", "Guard 2", "Guard 10"]
    expect(page.get_by_text("Guy Male American English Voice").first).to_be_visible()
    # The boxes say "Leave out": none is ticked at first, "Select none" ticks them all.
    page.get_by_role("button", name="Select none").click()
    for index in range(3):
        expect(boxes.nth(index)).to_be_checked()
    page.get_by_role("button", name="Select all").click()
    for index in range(3):
        expect(boxes.nth(index)).not_to_be_checked()
    clean(browser_page)


def test_the_count_above_the_list_follows_a_delete(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    api_key, _ = add_key(owner, "Studio key")
    gone = make_character(owner, api_key, "Gone Soon")
    make_character(owner, api_key, "Stays")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(list_url(owner))
    count = page.locator(".results-count")
    expect(count).to_have_text("2 characters")
    page.locator(f"#character-{gone.pk}").get_by_role("link", name="Delete Gone Soon").click()
    box = dialog(browser_page)
    box.get_by_label(re.compile(r"^Type Gone Soon to confirm")).fill("Gone Soon")
    box.get_by_role("button", name="Delete on Convai").click()
    expect(page.locator(f"#character-{gone.pk}")).to_have_count(0)
    expect(count).to_have_text("1 character")
    clean(browser_page)
