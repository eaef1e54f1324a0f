"""Archiving a team in the browser: the typed confirmation (a wrong name keeps what was typed
and says why), the banner on every team page, the refused change, and unarchiving."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from teams.models import Role, Team
from tests.e2e.conftest import PHONE
from tests.factories import TEST_PASSWORD, MembershipFactory

pytestmark = pytest.mark.e2e


def test_archive_with_typed_confirmation_then_unarchive(open_page: Any, owner: Any) -> None:
    team = owner.team
    MembershipFactory.create(team=team, role=Role.EDITOR)
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page
    browser_page.goto(reverse("teams:settings", args=[team.slug]))
    with page.expect_navigation():
        page.get_by_role("link", name="Archive…").click()

    # A wrong name: refused, said, and what was typed is still there.
    confirm = page.get_by_label("Type the team's name to confirm")
    confirm.fill("northwind studio")
    with page.expect_navigation():
        page.get_by_role("button", name="Archive team").click()
    expect(page.locator("[data-error-summary]")).to_contain_text("That is not the team's name")
    expect(page.get_by_label("Type the team's name to confirm")).to_have_value("northwind studio")
    assert Team.objects.get(pk=team.pk).archived_at is None

    page.get_by_label("Type the team's name to confirm").fill("Northwind Studio")
    with page.expect_navigation():
        page.get_by_role("button", name="Archive team").click()
    expect(page.locator(".alert-success")).to_contain_text("Northwind Studio is archived")
    banner = page.locator(".archived-banner")
    expect(banner).to_contain_text("nothing can be changed")

    # Every team page carries the banner; a change is refused with the reason.
    browser_page.goto(reverse("teams:members", args=[team.slug]))
    expect(page.locator(".archived-banner")).to_have_count(1)
    response = browser_page.goto(reverse("teams:invitation-create", args=[team.slug]))
    assert response.status == 403
    expect(page.get_by_role("heading", name="This team is archived")).to_be_visible()

    # Unarchive from Settings (linked from the banner).
    browser_page.goto(reverse("teams:overview", args=[team.slug]))
    with page.expect_navigation():
        page.locator(".archived-banner").get_by_role("link", name="Settings").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Unarchive team").click()
    expect(page.locator(".alert-success")).to_contain_text("active again")
    expect(page.locator(".archived-banner")).to_have_count(0)
    assert Team.objects.get(pk=team.pk).archived_at is None
    assert browser_page.csp_violations == [] and browser_page.script_errors == []


def test_the_lifecycle_pages_fit_a_phone(open_page: Any, owner: Any) -> None:
    team = owner.team
    browser_page = open_page(PHONE)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    for name in ("settings", "transfer", "archive", "delete"):
        browser_page.goto(reverse(f"teams:{name}", args=[team.slug]))
        expect(browser_page.page.locator("h1")).to_be_visible()
        assert browser_page.scroll_width() <= PHONE["width"], name
