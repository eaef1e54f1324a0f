"""A browser registers a build and copies its credential, sees the build page (its chart after
the game asked for tokens), rotates the credential in the dialog; no CSP violation or script
error on the way, at desktop and phone widths."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.e2e.conftest import DESKTOP, PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("BUILDS_SCREENSHOTS", "")  # a directory: save screenshots there


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_register_use_and_rotate_a_build(
    open_page: Callable[..., Any],
    owner: Any,
    add_key: Callable[..., Any],
    live_server: Any,
    viewport: dict[str, int],
) -> None:
    from tests.factories import TEST_PASSWORD

    add_key(owner, "Game key")
    browser = open_page(viewport)
    browser.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser.page
    width = viewport["width"]
    browser.goto(f"/t/{owner.team.slug}/builds/")
    page.get_by_role("heading", name="No builds yet").wait_for()
    _shot(page, f"builds-empty-{width}")
    page.get_by_role("link", name="Register a build").first.click()
    page.get_by_label("Name").fill("WebGL beta")
    page.get_by_label("Mint tokens with").select_option(index=1)
    page.get_by_label("Allowed web origins").fill("https://play.example.com/path")
    page.get_by_role("button", name="Register build").click()
    page.locator("#id_allowed_origins_error1").wait_for()  # explained, what was typed kept
    assert page.get_by_label("Name").input_value() == "WebGL beta"
    _shot(page, f"builds-create-error-{width}")
    page.get_by_label("Allowed web origins").fill("https://play.example.com")
    page.get_by_role("button", name="Register build").click()
    page.get_by_text("this is the only time it is shown").wait_for()
    credential = page.locator("#credential").input_value()
    endpoint = page.locator("#token-url").input_value()
    assert credential.startswith("cvb_")
    _shot(page, f"builds-issued-{width}")

    for _ in range(3):  # the game asks for tokens
        answer = requests.get(endpoint, headers={"X-Convai-Admin-Build": credential}, timeout=10)
        assert answer.status_code == 200
    page.get_by_role("link", name="Done").click()
    page.get_by_role("heading", name="Tokens minted, last 24 hours").wait_for()
    page.get_by_text("3 in all").wait_for()
    assert credential not in page.content()
    assert browser.scroll_width() <= width  # the long endpoint URL wraps
    _shot(page, f"builds-detail-{width}")

    page.get_by_role("link", name="Rotate credential").click()
    page.get_by_role("heading", name="Rotate the credential of “WebGL beta”?").wait_for()
    _shot(page, f"builds-rotate-{width}")
    page.get_by_role("button", name="Rotate credential").click()
    page.get_by_text("The previous credential keeps working until").wait_for()
    browser.goto(f"/t/{owner.team.slug}/builds/")
    page.get_by_role("link", name="WebGL beta").wait_for()
    _shot(page, f"builds-list-{width}")
    assert browser.scroll_width() <= width
    assert browser.csp_violations == [] and browser.script_errors == []
