"""What new users actually do, click by click in a real browser: start the first team, invite a
colleague who signs up through the link, change their role and remove them, add an API key,
change a password, and get around with the keyboard alone.

Every page a journey visits is also checked for CSP violations, script errors and (for the
first four journeys) horizontal scrolling on a 390 px wide phone screen.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from sandbox.services import create_sandbox_key
from teams.models import Role
from tests.e2e.conftest import DESKTOP, PHONE, BrowserPage
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory
from tests.support.secrets import assert_secret_absent

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "quiet-lantern-orbit-77"


# --- helpers ---------------------------------------------------------------------------------


def check_page(browser_page: BrowserPage, *, phone: bool = True) -> None:
    """No CSP violation or script error so far; and the page fits a 390 px screen."""
    page = browser_page.page
    page.wait_for_load_state("load")
    where = page.url
    assert browser_page.csp_violations == [], where
    assert browser_page.script_errors == [], where
    if phone:
        page.set_viewport_size(PHONE)
        width = browser_page.scroll_width()
        page.set_viewport_size(DESKTOP)
        assert width <= PHONE["width"], f"horizontal scroll ({width}px) at 390px on {where}"


def h1(browser_page: BrowserPage) -> str:
    return str(browser_page.page.get_by_role("heading", level=1).inner_text())


def flash(browser_page: BrowserPage) -> str:
    return str(browser_page.page.locator(".messages").inner_text())


def main_nav(browser_page: BrowserPage) -> Any:
    return browser_page.page.get_by_role("navigation", name="Main", exact=True)


def member_row(browser_page: BrowserPage, name: str) -> Any:
    return browser_page.page.locator("tbody tr").filter(has_text=name)


# --- 1. The first person on a new install ----------------------------------------------------


def test_first_user_creates_the_first_team(open_page: Any, transactional_db: None) -> None:
    user = UserFactory.create(username="ada", first_name="Ada", last_name="Lindqvist")
    browser_page = open_page()
    browser_page.sign_in(user.username, TEST_PASSWORD)
    page = browser_page.page

    # With no team, signing in leads straight to creating one.
    assert page.url == browser_page.base_url + reverse("teams:team-create")
    assert h1(browser_page) == "Welcome to Convai Admin, Ada Lindqvist"
    assert "Create your team" in page.inner_text("main")
    check_page(browser_page)

    page.get_by_label("Team name").fill("Northwind XR")
    page.get_by_role("button", name="Create team").click()
    page.wait_for_url("**/t/northwind-xr/")

    assert h1(browser_page) == "Northwind XR"
    subtitle = page.locator(".page-subtitle")
    assert "You are Owner in this team" in subtitle.inner_text()
    assert subtitle.locator(".badge-owner").inner_text() == "Owner"
    assert "Northwind XR is ready and you are its Owner." in flash(browser_page)
    assert page.locator(".team-switcher-name").inner_text() == "Northwind XR"
    nav = main_nav(browser_page)
    assert nav.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    # An owner is offered the next steps.
    assert page.get_by_role("link", name="Invite people").is_visible()
    assert page.get_by_role("link", name="Team settings").first.is_visible()
    check_page(browser_page)

    # Coming back later (home) lands on the team, not on "create your first team" again.
    browser_page.goto(reverse("teams:home"))
    assert page.url.endswith("/t/northwind-xr/")


# --- 2. Inviting a colleague who has no account yet ------------------------------------------


def test_invitation_link_signs_up_a_new_editor(open_page: Any, owner: Any) -> None:
    owner_page = open_page()
    owner_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = owner_page.page

    main_nav(owner_page).get_by_role("link", name="Members").click()
    page.wait_for_url("**/members/")
    assert h1(owner_page) == "Members"
    check_page(owner_page)

    page.locator(".page-actions").get_by_role("link", name="Invitations").click()
    page.wait_for_url("**/invitations/")
    assert page.get_by_role("heading", name="No pending invitations").is_visible()
    check_page(owner_page)

    page.locator(".page-actions").get_by_role("link", name="Invite people").click()
    page.wait_for_url("**/invitations/new/")
    assert h1(owner_page) == "Invite someone to Northwind Studio"
    role = page.get_by_label("Role")
    assert role.input_value() == "editor", "Editor is the preselected role"
    offered = role.locator("option").all_inner_texts()
    assert "Owner" not in offered and "Editor" in offered
    page.get_by_label("Email (optional)").fill("sam@example.test")
    check_page(owner_page)
    with page.expect_navigation():
        page.get_by_role("button", name="Create invitation link").click()

    assert h1(owner_page) == "Invitation ready"
    assert "only time it is shown" in page.inner_text("main")
    assert page.locator(".page-subtitle .badge-editor").inner_text() == "Editor"
    link = page.locator("#invitation-link").input_value()
    assert link.startswith(owner_page.base_url + "/invitations/")
    check_page(owner_page)

    # A newcomer, not signed in anywhere, opens the link.
    newcomer = open_page()
    newcomer.page.goto(link)
    new = newcomer.page
    assert h1(newcomer) == "Join Northwind Studio"
    assert "Maya Okafor invited you as" in new.locator(".auth-brand").inner_text()
    assert new.locator(".auth-brand .badge-editor").inner_text() == "Editor"
    assert new.get_by_label("Email").input_value() == "sam@example.test"
    check_page(newcomer)
    new.get_by_label("Username").fill("sam")
    new.get_by_label("First name").fill("Sam")
    new.get_by_label("Last name").fill("Rivera")
    new.get_by_label(re.compile(r"^Password\W*$")).fill(NEW_PASSWORD)
    new.get_by_label("Password again").fill(NEW_PASSWORD)
    new.get_by_role("button", name="Create account and join").click()
    new.wait_for_url(f"**{reverse('teams:overview', args=[owner.team.slug])}")

    assert h1(newcomer) == "Northwind Studio"
    assert new.locator(".page-subtitle .badge-editor").inner_text() == "Editor"
    assert "Welcome to Northwind Studio, Sam Rivera!" in flash(newcomer)
    assert "joined as Editor" in flash(newcomer)
    assert new.locator(".nav-user-name").inner_text() == "Sam Rivera"
    check_page(newcomer)

    # The owner now sees Sam among the members, as Editor.
    owner_page.goto(reverse("teams:members", args=[owner.team.slug]))
    row = member_row(owner_page, "Sam Rivera")
    assert row.count() == 1
    assert row.locator(".badge-editor").inner_text() == "Editor"
    assert "2 people have access" in page.locator(".page-subtitle").inner_text()
    check_page(owner_page)

    # And the invitation is listed as used, by Sam.
    owner_page.goto(reverse("teams:invitations", args=[owner.team.slug]))
    assert page.get_by_role("heading", name="No pending invitations").is_visible()
    used = page.locator("tbody tr").filter(has_text="sam@example.test")
    assert "Accepted" in used.inner_text() and "Sam Rivera" in used.inner_text()
    check_page(owner_page)

    # The same link, opened again by anyone, says it was already used.
    stranger = open_page()
    response = stranger.page.goto(link)
    assert response.status == 410
    assert h1(stranger) == "This invitation was already used"
    assert stranger.page.get_by_role("link", name="Sign in").first.is_visible()
    check_page(stranger)
    # ...and so it does for Sam, who is signed in.
    newcomer.page.goto(link)
    assert h1(newcomer) == "This invitation was already used"


# --- 3. Changing a member's role, then removing them -----------------------------------------


def test_owner_demotes_then_removes_a_member(open_page: Any, owner: Any) -> None:
    editor = MembershipFactory.create(
        team=owner.team, role=Role.EDITOR, user__first_name="Lee", user__last_name="Park"
    )
    team_url = reverse("teams:overview", args=[owner.team.slug])

    # Lee is signed in on their own machine.
    lee = open_page()
    lee.sign_in(editor.user.username, TEST_PASSWORD)
    assert h1(lee) == "Northwind Studio"

    owner_page = open_page()
    owner_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = owner_page.page
    owner_page.goto(reverse("teams:members", args=[owner.team.slug]))
    row = member_row(owner_page, "Lee Park")
    assert row.locator(".badge-editor").inner_text() == "Editor"

    # Role change: pick Viewer in Lee's row and save.
    row.get_by_label("Role for Lee Park").select_option(label="Viewer")
    with page.expect_navigation():
        row.get_by_role("button", name="Save").click()
    assert "Lee Park is now Viewer in Northwind Studio." in flash(owner_page)
    row = member_row(owner_page, "Lee Park")
    assert row.locator(".badge-viewer").inner_text() == "Viewer"
    assert row.get_by_label("Role for Lee Park").input_value() == "viewer"
    check_page(owner_page)

    # Lee sees the new role on the next page load.
    lee.goto(team_url)
    assert lee.page.locator(".page-subtitle .badge-viewer").inner_text() == "Viewer"

    # Removal: the confirmation opens in the dialog, on the same page.
    row.get_by_role("link", name="Remove").click()
    page.wait_for_selector("#modal[open]")
    assert page.url.endswith(reverse("teams:members", args=[owner.team.slug]))
    dialog = page.locator("#modal")
    assert dialog.get_by_role("heading").inner_text() == "Remove Lee Park from Northwind Studio?"
    assert "loses access to this team right away" in dialog.inner_text()
    check_page(owner_page)
    with page.expect_navigation():
        dialog.get_by_role("button", name="Remove member").click()
    assert not page.evaluate("document.getElementById('modal').open")
    assert "Lee Park no longer has access to Northwind Studio." in flash(owner_page)
    assert member_row(owner_page, "Lee Park").count() == 0
    assert "1 person has access" in page.locator(".page-subtitle").inner_text()
    check_page(owner_page)

    # Lee, still signed in, is told plainly at the team's address, with no team data.
    response = lee.goto(team_url)
    assert response.status == 403
    assert h1(lee) == "You no longer have access to Northwind Studio"
    assert "Lee Park" not in lee.page.locator("main").inner_text()
    assert lee.page.locator(".team-switcher-name").inner_text() == ""
    check_page(lee)
    # Home no longer sends Lee to the team either: they are asked to start their own.
    lee.goto(reverse("teams:home"))
    assert lee.page.url.endswith(reverse("teams:team-create"))


# --- 4. Adding a Convai API key --------------------------------------------------------------


def test_add_api_key_then_a_wrong_one(open_page: Any, owner: Any, sandbox: str) -> None:
    raw_key = create_sandbox_key("studio")
    wrong_key = "0f" * 16  # well-formed, but Convai (the sandbox) does not know it
    browser_page = open_page()
    page = browser_page.page
    documents: list[Any] = []
    page.on(
        "response",
        lambda r: documents.append(r) if r.request.resource_type == "document" else None,
    )

    def assert_nothing_received_holds_a_key() -> None:
        """Every HTML document the browser got since the last check, and the live DOM."""
        for response in documents:
            if not 300 <= response.status < 400:  # redirects have no body
                for secret in (raw_key, wrong_key):
                    assert_secret_absent(response.text(), secret)
        documents.clear()
        for secret in (raw_key, wrong_key):
            assert_secret_absent(page.content(), secret)

    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    main_nav(browser_page).get_by_role("link", name="API keys").click()
    page.wait_for_url(f"**{reverse('keys:list')}")
    assert h1(browser_page) == "API keys"
    assert page.get_by_role("heading", name="No API keys yet").is_visible()
    check_page(browser_page)

    page.get_by_label("Label").fill("Studio production")
    page.get_by_label("Convai API key").fill(raw_key)
    documents.clear()
    page.get_by_role("button", name="Verify and save").click()
    page.wait_for_selector(".messages .alert-success")
    assert_nothing_received_holds_a_key()

    assert "Convai accepted “Studio production”" in flash(browser_page)
    row = page.locator("#key-list tbody tr").filter(has_text="Studio production")
    assert row.locator("code").inner_text() == f"…{raw_key[-4:]}"
    assert page.get_by_label("Convai API key").input_value() == ""
    check_page(browser_page)

    # A wrong key: refused, the key field emptied, the label kept.
    page.get_by_label("Label").fill("Old laptop")
    page.get_by_label("Convai API key").fill(wrong_key)
    page.get_by_role("button", name="Verify and save").click()
    page.wait_for_selector(".field-error")
    assert_nothing_received_holds_a_key()
    error = page.locator("#add-key .has-error .field-error").inner_text()
    assert "Convai rejected this key" in error
    assert page.get_by_label("Convai API key").input_value() == ""
    assert page.get_by_label("Label").input_value() == "Old laptop"
    assert "enter it again" in page.locator("#add-key").inner_text()
    assert page.locator("#key-list tbody tr").count() == 1, "the wrong key was not saved"
    check_page(browser_page)

    # Coming back later: still only the last four.
    browser_page.goto(reverse("keys:list"))
    assert_nothing_received_holds_a_key()
    assert page.locator("#key-list code").all_inner_texts() == [f"…{raw_key[-4:]}"]


# --- 5. Changing one's password --------------------------------------------------------------


def test_change_password_sign_out_and_back_in(open_page: Any, owner: Any) -> None:
    other_device = open_page()
    other_device.sign_in(owner.user.username, TEST_PASSWORD)
    browser_page = open_page()
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser_page.page

    page.locator(".nav-user > summary").click()
    page.locator(".nav-user").get_by_role("link", name="Change password").click()
    page.wait_for_url(f"**{reverse('accounts:password-change')}")
    assert h1(browser_page) == "Change password"
    page.get_by_label("Old password").fill(TEST_PASSWORD)
    page.get_by_label(re.compile(r"^New password\W*$")).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url(f"**{reverse('accounts:password-change-done')}")
    assert h1(browser_page) == "Password changed"
    assert "still signed in on this device" in page.inner_text("main")
    check_page(browser_page, phone=False)
    # As the form promised, the other device is signed out.
    other_device.goto(reverse("teams:overview", args=[owner.team.slug]))
    assert other_device.page.url.startswith(
        other_device.base_url + reverse("accounts:login") + "?next="
    )

    page.locator(".nav-user > summary").click()
    page.locator(".nav-user").get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"**{reverse('accounts:logged-out')}")
    # Signing out says so, with no navigation left, and offers to sign in again.
    assert h1(browser_page) == "You are signed out"
    assert page.locator(".topbar").count() == 0
    page.get_by_role("link", name="Sign in again").click()
    page.wait_for_url(f"**{reverse('accounts:login')}")

    # The old password no longer works; the new one does.
    browser_page.sign_in(owner.user.username, TEST_PASSWORD)
    assert page.locator(".alert-error").count() == 1
    browser_page.sign_in(owner.user.username, NEW_PASSWORD)
    assert page.url.endswith(reverse("teams:overview", args=[owner.team.slug]))
    assert h1(browser_page) == "Northwind Studio"
    check_page(browser_page, phone=False)


# --- 6. Keyboard only ------------------------------------------------------------------------

FOCUS_RING_JS = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return {
    tag: el.tagName.toLowerCase(),
    name: el === document.body
      ? '' : (el.getAttribute('aria-label') || el.textContent || '').trim(),
    id: el.id,
    inNav: Boolean(el.closest('nav.nav')),
    visible: outline || style.boxShadow !== 'none',
  };
}"""


def tab(page: Any) -> dict[str, Any]:
    """Press Tab; return the newly focused element, which must show where focus is (unless
    focus just left the page for the browser's own controls, after the last element)."""
    page.keyboard.press("Tab")
    focused: dict[str, Any] = page.evaluate(FOCUS_RING_JS)
    assert focused["visible"] or focused["tag"] == "body", f"no visible focus on {focused}"
    return focused


def tab_to(page: Any, matches: Any, limit: int = 30) -> dict[str, Any]:
    for _ in range(limit):
        focused = tab(page)
        if matches(focused):
            return focused
    raise AssertionError("never reached the element with Tab")


def test_sign_in_and_main_nav_with_the_keyboard_only(open_page: Any, owner: Any) -> None:
    browser_page = open_page()
    browser_page.goto(reverse("accounts:login"))
    page = browser_page.page

    # The username field has focus on arrival (visibly); Tab goes through the form in
    # order, and Enter submits.
    focused = page.evaluate(FOCUS_RING_JS)
    assert focused["id"] == "id_login" and focused["visible"], focused
    page.keyboard.type(owner.user.username)
    assert tab(page)["id"] == "id_password"
    page.keyboard.type(TEST_PASSWORD)
    assert tab(page)["name"] == "Sign in"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert h1(browser_page) == "Northwind Studio"

    # The main navigation: Tab to "Members", Enter follows it.
    tab_to(page, lambda f: f["inNav"] and f["name"] == "Members")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert h1(browser_page) == "Members"
    tab_to(page, lambda f: f["inNav"] and f["name"] == "API keys")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert h1(browser_page) == "API keys"

    # The user menu opens with Enter, and its links are reachable with Tab.
    tab_to(page, lambda f: f["tag"] == "summary" and owner.user.display_name in f["name"])
    page.keyboard.press("Enter")
    expect(page.locator(".nav-user[open]")).to_have_count(1)
    assert tab(page)["name"] == "Two-factor & passkeys"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert h1(browser_page) == "Two-factor & passkeys"
    # Escape closes an open menu and gives focus back to its summary.
    tab_to(page, lambda f: f["tag"] == "summary" and "Northwind Studio" in f["name"])
    page.keyboard.press("Enter")
    expect(page.locator(".team-switcher[open]")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(".team-switcher[open]")).to_have_count(0)
    assert page.evaluate(FOCUS_RING_JS)["tag"] == "summary"
    check_page(browser_page, phone=False)
