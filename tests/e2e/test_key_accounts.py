"""The API keys page in Chromium at 1280 and 390 px: accounts with their quota bars fit the
screen, the bars are meters a screen reader can name, and "Refresh usage" works from the page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse

from keys.services import add_api_key
from sandbox.services import configure_sandbox_account, create_sandbox_key
from tests.e2e.conftest import DESKTOP, PHONE
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_accounts_and_quotas_fit_and_refresh_from_the_page(
    open_page: Any,
    owner: Any,
    live_server: Any,
    settings: Any,
    viewport: dict[str, int],
) -> None:
    settings.CONVAI_API_BASE_URL = f"{live_server.url}/sandbox"
    configure_sandbox_account(
        "Lighthouse Studio",
        email="maya@lighthouse.example.com",
        plan_name="Professional",
        renews_at=datetime(2030, 1, 31, tzinfo=UTC),
        limits={"interactions": 5000, "core-api": 20000},
        usage={"interactions": 1200, "core-api": 17300},
    )
    user = owner.user
    for label, sandbox_label in (("Studio production", "a"), ("Writers room", "b")):
        add_api_key(
            actor=user,
            label=label,
            raw_key=create_sandbox_key(sandbox_label, account="Lighthouse Studio"),
        )
    add_api_key(actor=user, label="Offline laptop", raw_key="f" * 32, skip_verification=True)

    browser_page = open_page(viewport)
    browser_page.sign_in(user.username, TEST_PASSWORD)
    browser_page.goto(reverse("keys:list"))
    page = browser_page.page

    assert browser_page.scroll_width() <= viewport["width"]
    account = page.get_by_role("region", name="Convai account Lighthouse Studio")
    assert account.get_by_text("Professional plan").is_visible()
    interactions = account.get_by_role("meter", name="Interactions: 1,200 of 5,000 used (24 %)")
    assert interactions.is_visible()
    assert account.get_by_role(
        "meter", name="Core API calls: 17,300 of 20,000 used (86 %)"
    ).is_visible()
    assert account.get_by_role("row").filter(has_text="Writers room").is_visible()
    assert page.get_by_role("region", name="Account not known yet").is_visible()

    configure_sandbox_account("Lighthouse Studio", usage={"interactions": 2500})
    refresh = account.get_by_role("button", name="Refresh usage of Lighthouse Studio")
    refresh.scroll_into_view_if_needed()
    box = refresh.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    with page.expect_navigation():
        refresh.click()
    page.get_by_text("Usage refreshed with").wait_for()
    account.get_by_role("meter", name="Interactions: 2,500 of 5,000 used (50 %)").wait_for()
    assert browser_page.csp_violations == [] and browser_page.script_errors == []
