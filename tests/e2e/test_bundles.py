"""Bundles in a real browser against the sandbox on the live server: export download, import
preview and apply (the job's progress reaches 100 %), and Copy to another key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from characters.models import Character
from teams.models import Membership
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.support import AddKey, make_character
from tests.factories import TEST_PASSWORD
from tests.jobs.support import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def uploads(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_export_then_import_into_another_account_then_copy(
    open_page: Any, owner: Membership, add_key: AddKey, tmp_path: Path, viewport: dict[str, int]
) -> None:
    staging, _ = add_key(owner, "Staging", account="staging")
    production, _ = add_key(owner, "Production", account="production")
    original = make_character(owner, staging, "Raymond")
    browser = open_page(viewport)
    browser.sign_in(owner.user.username, TEST_PASSWORD)
    page = browser.page
    slug = owner.team.slug

    # Export download from the list.
    browser.goto(f"/t/{slug}/characters/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export", exact=True).click()
    saved = tmp_path / "bundle.json"
    download.value.save_as(saved)
    assert download.value.suggested_filename.startswith(f"{slug}-characters-")
    assert [c["name"] for c in json.loads(saved.read_text())["characters"]] == ["Raymond"]

    # Import it into the production account: preview, then apply.
    page.get_by_role("link", name="Import bundle").click()
    page.get_by_label("Bundle file").set_input_files(str(saved))
    page.get_by_label("Import with your key").select_option(str(production.pk))
    page.get_by_role("button", name="Check the bundle").click()
    page.locator("[data-count=create]").filter(has_text="1 new").wait_for()
    assert page.locator("tr[data-plan=create]").count() == 1
    page.get_by_role("button", name="Import 1 character").click()
    page.get_by_role("heading", level=1).filter(has_text="#").wait_for()
    run_worker()
    page.reload()
    page.get_by_text("100").first.wait_for()
    copy = Character.objects.get(team=owner.team, bound_key=production)
    assert copy.backstory == original.backstory

    # Copy to another key from the original's page.
    browser.goto(f"/t/{slug}/characters/{original.pk}/")
    page.get_by_role("link", name="Copy to another key").click()
    page.get_by_label("Copy to your key").select_option(str(production.pk))
    page.get_by_role("button", name="Copy character").click()
    page.get_by_text("Copied from").wait_for()
    assert Character.objects.filter(copied_from=original).count() == 1
    assert browser.scroll_width() <= viewport["width"]
    assert not browser.csp_violations and not browser.script_errors
