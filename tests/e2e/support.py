"""Helpers of the browser tests about characters (test_characters, test_history,
test_bundles, test_consistency): characters made through the service, the pages' URLs, and
checks of what a page shows. (`add_key` is a fixture, in tests/e2e/conftest.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from characters import services
from characters.models import Character
from keys.models import ApiKey
from sandbox.models import SandboxCharacter, SandboxKey
from sandbox.services import hash_key
from teams.models import Membership
from tests.e2e.conftest import DESKTOP, PHONE, BrowserPage
from tests.factories import TEST_PASSWORD

SHOTS = Path("/tmp/shots/e2e")
BACKSTORY = "Raymond is a retired lighthouse keeper.\nHe speaks slowly and loves storms."
CLYDE = "Clyde ( Middle Aged War Veteran American Male ) · Male"
CLYDE_VALUE = "Clyde_MALE_11LABS"
GLINDA_VALUE = "Glinda_FEMALE_11LABS"


# --- fixtures --------------------------------------------------------------------------------


AddKey = Callable[..., tuple[ApiKey, str]]


def make_character(member: Membership, api_key: ApiKey, name: str, **fields: Any) -> Character:
    """A character created through the service (so on the sandbox too)."""
    values: dict[str, Any] = {
        "name": name,
        "voice_type": CLYDE_VALUE,
        "backstory": BACKSTORY,
        "actions": ["Wave", "Salute"],
        "language_codes": [],
    }
    values.update(fields)
    return services.create_character(actor=member, api_key_id=api_key.pk, **values).character


def remote(character: Character) -> SandboxCharacter:
    return SandboxCharacter.objects.get(character_id=character.convai_id)


def sandbox_key(raw: str) -> SandboxKey:
    return SandboxKey.objects.select_related("account").get(key_hash=hash_key(raw))


# --- helpers ---------------------------------------------------------------------------------


def signed_in(open_page: Any, member: Membership, viewport: dict[str, int] = DESKTOP) -> Any:
    browser_page: BrowserPage = open_page(viewport)
    browser_page.sign_in(member.user.username, TEST_PASSWORD)
    expect(browser_page.page).not_to_have_url(re.compile(r"/accounts/login/"))
    return browser_page


def h1(browser_page: BrowserPage) -> Any:
    return browser_page.page.get_by_role("heading", level=1)


def flash(browser_page: BrowserPage) -> Any:
    return browser_page.page.locator(".messages")


def dialog(browser_page: BrowserPage) -> Any:
    return browser_page.page.locator("#modal")


def list_url(member: Membership) -> str:
    return reverse("characters:character-list", args=[member.team.slug])


def detail_url(character: Character) -> str:
    return reverse("characters:character-detail", args=[character.team.slug, character.pk])


def clean(browser_page: BrowserPage) -> None:
    """No CSP violation and no script error so far."""
    where = browser_page.page.url
    assert browser_page.csp_violations == [], where
    assert browser_page.script_errors == [], where


def fits_phone(browser_page: BrowserPage) -> None:
    """No CSP violation or script error so far, and the page fits a 390 px screen."""
    page = browser_page.page
    page.wait_for_load_state("load")
    clean(browser_page)
    before = page.viewport_size
    page.set_viewport_size(PHONE)
    width = browser_page.scroll_width()
    page.set_viewport_size(before)
    assert width <= PHONE["width"], f"horizontal scroll ({width}px) at 390px on {page.url}"


def arrived(browser_page: BrowserPage, path: str | re.Pattern[str]) -> None:
    """Wait for the browser to reach `path`; if it does not, fail with the page's errors."""
    try:
        browser_page.page.wait_for_url(f"**{path}" if isinstance(path, str) else path)
    except PlaywrightTimeout:
        errors = browser_page.page.locator("main .alert-error, main .field-error")
        raise AssertionError(
            f"stayed on {browser_page.page.url}: {errors.all_inner_texts()}"
        ) from None


def shoot(browser_page: BrowserPage, name: str) -> None:
    """Screenshots of the current page at 1280 and at 390 px."""
    page = browser_page.page
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{size['width']}.png"), full_page=True)
    page.set_viewport_size(before)
