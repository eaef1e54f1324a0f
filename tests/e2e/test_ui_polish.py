"""Rough edges from the browser walkthrough, checked in a real browser: on a 390 px phone the
members, invitations and API key tables show every control on screen (rows stack as cards), and
the invitation link page copies the link with one click (and degrades without script)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from keys.models import ApiKey
from teams.invitations import create_invitation
from teams.models import Role
from tests.e2e.conftest import DESKTOP, PHONE, BrowserPage
from tests.factories import TEST_PASSWORD, MembershipFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def new_page(browser: Any, live_server: Any) -> Iterator[Callable[..., BrowserPage]]:
    """Like open_page, with the context options these tests need (clipboard, script off)."""
    contexts: list[Any] = []

    def open_(viewport: dict[str, int] = DESKTOP, **options: Any) -> BrowserPage:
        permissions = options.pop("permissions", [])
        context = browser.new_context(viewport=viewport, **options)
        if permissions:
            context.grant_permissions(permissions, origin=live_server.url)
        context.set_default_timeout(5000)
        contexts.append(context)
        return BrowserPage(context.new_page(), live_server.url)

    yield open_
    for context in contexts:
        context.close()


def _fully_on_screen(locator: Any, width: int) -> None:
    """Every match is rendered and lies inside the viewport horizontally."""
    count = locator.count()
    assert count > 0
    for index in range(count):
        element = locator.nth(index)
        box = element.bounding_box()
        label = element.inner_text() or element.get_attribute("name")
        assert box is not None, f"{label} is not rendered"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{label} cut off: {box}"


def _no_table_scrolls(browser_page: BrowserPage) -> None:
    overflowing = browser_page.page.evaluate(
        "[...document.querySelectorAll('.table-wrap')]"
        ".filter(w => w.scrollWidth > w.clientWidth).length"
    )
    assert overflowing == 0


def test_member_controls_are_on_screen_at_390px(new_page: Any, owner: Any) -> None:
    # A second Owner: the only Owner is not offered "Leave", and this checks that control too.
    for n, role in enumerate([Role.OWNER, Role.EDITOR, Role.VIEWER]):
        MembershipFactory.create(
            team=owner.team,
            role=role,
            user__first_name=f"Alexandrina{n}",
            user__last_name="Montgomery-Featherstonehaugh",
        )
    browser_page = new_page(PHONE)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("teams:members", args=[owner.team.slug]))
    page = browser_page.page
    remove_buttons = page.get_by_role("link", name="Remove")
    assert remove_buttons.count() == 3
    _fully_on_screen(remove_buttons, PHONE["width"])
    _fully_on_screen(page.get_by_role("button", name="Save"), PHONE["width"])
    _fully_on_screen(page.locator("tbody select"), PHONE["width"])
    _fully_on_screen(page.get_by_role("link", name="Leave"), PHONE["width"])
    _no_table_scrolls(browser_page)
    assert browser_page.scroll_width() <= PHONE["width"]
    # Each stacked cell still says what it is.
    label = page.evaluate(
        "getComputedStyle(document.querySelector('td[data-label=\"Role\"]'), '::before').content"
    )
    assert label == '"Role"'
    assert browser_page.csp_violations == [] and browser_page.script_errors == []


def test_member_table_stays_a_table_on_desktop(new_page: Any, owner: Any) -> None:
    MembershipFactory.create(team=owner.team, role=Role.EDITOR)
    browser_page = new_page(DESKTOP)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("teams:members", args=[owner.team.slug]))
    page = browser_page.page
    assert page.locator("thead").is_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('tbody tr')).display") == (
        "table-row"
    )


def test_invitation_and_key_controls_are_on_screen_at_390px(new_page: Any, owner: Any) -> None:
    create_invitation(
        actor=owner, role=Role.EDITOR, email="someone.with.a.long.address@example.test"
    )
    ApiKey.objects.create(owner=owner.user, label="A rather long label for a key", last_four="wxyz")
    browser_page = new_page(PHONE)
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page
    browser_page.goto(reverse("teams:invitations", args=[owner.team.slug]))
    _fully_on_screen(page.locator("tbody").get_by_role("link", name="Revoke"), PHONE["width"])
    _no_table_scrolls(browser_page)
    browser_page.goto(reverse("keys:list"))
    _fully_on_screen(page.locator("tbody").get_by_role("link", name="Revoke"), PHONE["width"])
    _fully_on_screen(page.locator("tbody").get_by_role("button", name="Verify"), PHONE["width"])
    _no_table_scrolls(browser_page)
    assert browser_page.scroll_width() <= PHONE["width"]


def _create_invitation_link(browser_page: BrowserPage, owner: Any) -> Any:
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page.goto(reverse("teams:invitation-create", args=[owner.team.slug]))
    page = browser_page.page
    with page.expect_navigation():
        page.get_by_role("button", name="Create invitation link").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Invitation ready"
    return page


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_copy_link_puts_the_link_on_the_clipboard(
    new_page: Any, owner: Any, viewport: dict[str, int]
) -> None:
    browser_page = new_page(viewport, permissions=["clipboard-read", "clipboard-write"])
    page = _create_invitation_link(browser_page, owner)
    field = page.locator("#invitation-link")
    link = field.input_value()
    assert link.startswith(browser_page.base_url + "/invitations/")
    # The field has focus (autofocus) and its whole text is selected.
    assert page.evaluate(
        "(() => { const f = document.activeElement;"
        " return f.id === 'invitation-link' && f.selectionStart === 0"
        " && f.selectionEnd === f.value.length; })()"
    )
    button = page.get_by_role("button", name="Copy link")
    _fully_on_screen(button, viewport["width"])
    button.click()
    # The copy is asynchronous (a promise): wait for what it shows when done.
    expect(page.locator("[data-copy-target]")).to_have_text("Copied")
    expect(page.locator("[data-copy-status]")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == link
    # The label comes back, ready for another copy.
    expect(page.locator("[data-copy-target]")).to_have_text("Copy link")
    expect(page.locator("[data-copy-status]")).to_have_text("")
    assert browser_page.csp_violations == [] and browser_page.script_errors == []


def test_copy_link_without_the_clipboard_api_selects_the_text(new_page: Any, owner: Any) -> None:
    """Served over plain http (not a secure context) there is no navigator.clipboard."""
    browser_page = new_page(DESKTOP)
    browser_page.page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"
    )
    page = _create_invitation_link(browser_page, owner)
    page.get_by_role("heading", level=1).click()  # move focus and the selection away
    page.get_by_role("button", name="Copy link").click()
    selected = page.evaluate(
        "(() => { const f = document.getElementById('invitation-link');"
        " return document.activeElement === f"
        " && f.value.substring(f.selectionStart, f.selectionEnd); })()"
    )
    assert selected == page.locator("#invitation-link").input_value()
    status = page.locator("[data-copy-status]").inner_text()
    # Chromium still honours the old copy command; a browser that does not gets the hint.
    assert status in {
        "Copied to the clipboard.",
        "The text is selected: press Ctrl+C (\u2318C on a Mac) to copy it.",
    }
    assert browser_page.script_errors == []


def test_without_script_there_is_no_copy_button(new_page: Any, owner: Any) -> None:
    browser_page = new_page(DESKTOP, java_script_enabled=False)
    page = _create_invitation_link(browser_page, owner)
    assert page.locator("[data-copy-target]").count() == 1
    assert not page.locator("[data-copy-target]").is_visible()
    assert page.locator("#invitation-link").is_visible()
