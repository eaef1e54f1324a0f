"""After an action, the page jumps to #messages: the message must show below the sticky top
bar, not under it (desktop and phone)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from keys.models import ApiKey
from tests.e2e.conftest import DESKTOP, PHONE
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_success_message_is_visible_after_the_jump(
    open_page: Any, owner: Any, viewport: dict[str, int]
) -> None:
    for n in range(12):  # a page long enough for the jump to scroll
        ApiKey.objects.create(owner=owner.user, label=f"Machine {n}", last_four=f"{n:04d}")
    doomed = ApiKey.objects.create(owner=owner.user, label="Old laptop", last_four="dead")
    browser_page = open_page(viewport)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page
    browser_page.goto(reverse("keys:revoke", args=[doomed.pk]))
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url(f"**{reverse('keys:list')}#messages")
    alert = page.locator("#messages .alert-success")
    expect(alert).to_be_visible()
    page.wait_for_load_state("load")
    topbar = page.locator(".topbar").bounding_box()
    box = alert.bounding_box()
    assert topbar is not None and box is not None
    assert box["y"] >= topbar["y"] + topbar["height"], (box, topbar)
    assert box["y"] + box["height"] <= viewport["height"]
    # The page did jump: it is not simply a short page at the top.
    assert page.evaluate("document.documentElement.scrollHeight") > viewport["height"]
