"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Never downloads a browser. When Chromium is missing, every test here is skipped with the
command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from keys.models import ApiKey
from keys.services import add_api_key
from sandbox.services import create_sandbox_key
from teams.models import Membership

# Playwright's sync API runs an event loop in this thread; Django's ORM (used by the tests to
# set up data) would otherwise refuse to run next to it.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _chromium_available() -> bool:
    path = Path(CHROMIUM)
    return path.is_file() and os.access(path, os.X_OK)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not _chromium_available():
        pytest.skip(f"Chromium not found at {CHROMIUM}; install it with apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True
        )
        yield chromium
        chromium.close()


class BrowserPage:
    """A Playwright page on the live server that records CSP violations and script errors."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.csp_violations: list[str] = []
        self.script_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))

    def _on_console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def sign_in(self, username: str, password: str) -> None:
        self.goto("/accounts/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        # Wait for the answer to this submit, not for the load state of the page we are on
        # (already "loaded": that would return at once, before the answer arrived).
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Sign in", exact=True).click()

    def scroll_width(self) -> int:
        return int(self.page.evaluate("document.documentElement.scrollWidth"))


@pytest.fixture
def open_page(browser: Any, live_server: Any) -> Iterator[Callable[..., BrowserPage]]:
    """open_page(viewport=DESKTOP) -> BrowserPage in a fresh browser context (own cookies)."""
    contexts: list[Any] = []

    def open_(viewport: dict[str, int] = DESKTOP) -> BrowserPage:
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(5000)
        contexts.append(context)
        return BrowserPage(context.new_page(), live_server.url)

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def owner(transactional_db: None) -> Any:
    """An Owner of a team, whose password is TEST_PASSWORD."""
    from teams.models import Role
    from tests.factories import MembershipFactory

    return MembershipFactory.create(
        role=Role.OWNER,
        team__name="Northwind Studio",
        user__first_name="Maya",
        user__last_name="Okafor",
    )


_labels = count(1)


@pytest.fixture
def add_key(sandbox: str) -> Callable[..., tuple[ApiKey, str]]:
    """add_key(member, label, account=None) -> (stored ApiKey, raw key), verified over HTTP
    by the key service against the sandbox (which issued the key)."""

    def add(member: Membership, label: str = "Studio key", *, account: str | None = None) -> Any:
        raw = create_sandbox_key(f"{label}-{next(_labels)}", account=account)
        api_key = add_api_key(actor=member.user, label=label, raw_key=raw)
        assert api_key.verified_at is not None
        return api_key, raw

    return add
