"""The audit log in Chromium: an Admin filters with qualifiers, expands a row (htmx) into its
details, and exports CSV (a download); a Viewer is refused. No CSP violation anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit.models import AuditEvent, Outcome
from audit.services import record
from teams.models import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.e2e


def _seed(team: Any) -> tuple[Any, Any]:
    alice = UserFactory.create(username="alice", first_name="Alice", last_name="Ames")
    bob = UserFactory.create(username="bob", first_name="Bob", last_name="Brandt")
    for user, action, outcome, label in (
        (alice, "character.update", Outcome.SUCCESS, "Raymond"),
        (alice, "character.delete", Outcome.FAILURE, "Dembe"),
        (bob, "character.delete", Outcome.FAILURE, "Liz"),
        (alice, "character.delete", Outcome.SUCCESS, "Aram"),
    ):
        record(
            action,
            actor=user,
            team=team,
            target_type="character",
            target_id=f"cid-{label.lower()}",
            target_label=label,
            outcome=outcome,
            details={
                "changes": {"backstory": ["Before the edit", "After the edit"]},
                "convai_status": 500 if outcome == Outcome.FAILURE else None,
                "key_used": "Studio key (…9f2c)",
            },
        )
    return alice, bob


def test_an_admin_filters_expands_and_exports(open_page: Any, owner: Any) -> None:
    team = owner.team
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    _seed(team)
    browser_page = open_page()
    browser_page.sign_in(admin.user.username, TEST_PASSWORD)
    page = browser_page.page
    browser_page.goto(reverse("audit:log", args=[team.slug]))
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()

    search = page.get_by_role("searchbox", name="Search")
    search.fill("actor:alice action:character.delete outcome:failure")
    search.press("Enter")
    page.wait_for_url("**outcome%3Afailure**")  # htmx pushed the shareable URL
    rows = page.locator("#audit-results tbody tr[id^='event-']")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Dembe")
    expect(rows.first).to_contain_text("Failure")

    rows.first.get_by_role("link", name="Details").click()
    event = AuditEvent.objects.get(target_label="Dembe")
    detail = page.locator(f"#event-{event.pk}-more")
    expect(detail).to_contain_text("Before the edit")
    expect(detail).to_contain_text("After the edit")
    expect(detail).to_contain_text("Studio key (…9f2c)")
    expect(detail).to_contain_text("Chain position")
    expect(detail).to_contain_text(event.hash)
    expect(detail).to_contain_text("Request ID")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    body = Path(download.path()).read_text(encoding="utf-8")
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,created_at,chain,seq")
    assert len(lines) == 2 and "Dembe" in lines[1]  # the filter, exported
    assert AuditEvent.objects.filter(team=team, action="audit.exported").count() == 1

    assert browser_page.csp_violations == []
    assert browser_page.script_errors == []


def test_a_viewer_is_refused(open_page: Any, owner: Any) -> None:
    viewer = MembershipFactory.create(team=owner.team, role=Role.VIEWER)
    browser_page = open_page()
    browser_page.sign_in(viewer.user.username, TEST_PASSWORD)
    response = browser_page.goto(reverse("audit:log", args=[owner.team.slug]))
    assert response.status == 403
    assert browser_page.csp_violations == []
