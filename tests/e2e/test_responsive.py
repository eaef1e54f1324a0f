"""At 390 px wide the main pages fit the screen (tables scroll inside their own box) and the
navigation folds into a menu that works without script."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from keys.models import ApiKey
from tests.e2e.conftest import PHONE
from tests.factories import TEST_PASSWORD, MembershipFactory

pytestmark = pytest.mark.e2e


def test_no_horizontal_scroll_at_390px(open_page: Any, owner: Any) -> None:
    for n in range(4):
        MembershipFactory.create(team=owner.team, user__first_name=f"Member{n}")
    ApiKey.objects.create(owner=owner.user, label="A rather long label for a key", last_four="abcd")
    browser_page = open_page(PHONE)
    browser_page.goto(reverse("accounts:login"))
    assert browser_page.scroll_width() <= PHONE["width"], "login"
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    slug = owner.team.slug
    for path in (
        reverse("teams:overview", args=[slug]),
        reverse("teams:members", args=[slug]),
        reverse("keys:list"),
        reverse("accounts:password-change"),
    ):
        browser_page.goto(path)
        assert browser_page.scroll_width() <= PHONE["width"], path


def test_compact_menu_at_390px(open_page: Any, owner: Any) -> None:
    browser_page = open_page(PHONE)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page
    assert not page.get_by_role("navigation", name="Main", exact=True).is_visible()
    page.get_by_label("Menu", exact=True).click()
    compact = page.get_by_role("navigation", name="Main (compact)")
    compact.get_by_role("link", name="Members").click()
    page.wait_for_url(f"**{reverse('teams:members', args=[owner.team.slug])}")
    assert page.get_by_role("heading", level=1).inner_text() == "Members"
