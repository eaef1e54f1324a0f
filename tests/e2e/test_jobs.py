"""Import all from a key in a real browser: choose the key's characters in the preview, start
the job, watch the progress bar (htmx polling) reach 100 % while the real worker loop runs the
task, then see the same finished state on a 390 px phone, without horizontal scrolling."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from jobs.models import Job
from keys.services import add_api_key
from sandbox.services import create_sandbox_key
from tests.e2e.conftest import PHONE, BrowserPage
from tests.factories import TEST_PASSWORD
from tests.jobs.support import run_worker, seed_remote
from tests.support.characters import Key

pytestmark = pytest.mark.e2e


@pytest.mark.usefixtures("sandbox_without_counters")  # the worker writes while it answers
def test_import_all_progress_reaches_100_percent(sandbox: str, owner: Any, open_page: Any) -> None:
    raw = create_sandbox_key("e2e-jobs")
    api_key = add_api_key(actor=owner.user, label="Studio key", raw_key=raw)
    remote = seed_remote(Key(api_key, raw, "e2e-jobs"), 6, "Keeper")
    browser: BrowserPage = open_page()
    page = browser.page
    browser.sign_in(owner.user.username, TEST_PASSWORD)
    browser.goto(reverse("characters:character-list", args=[owner.team.slug]))
    page.get_by_role("link", name="Import all from a key").click()
    expect(page.get_by_role("heading", name="6 characters under “Studio key”")).to_be_visible()
    page.get_by_label(f"Leave out {remote[0].character_name}").check()
    page.get_by_role("button", name="Import the chosen characters").click()
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "queued")

    run_worker()  # the real worker loop, in this process; the page polls every second

    expect(page.locator("#job-progress")).to_have_attribute("data-state", "done", timeout=8000)
    expect(page.locator("progress")).to_have_attribute("value", "5")
    expect(page.get_by_text("5 of 5 (100 %)")).to_be_visible()
    expect(page.locator(".job-items tbody tr")).to_have_count(5)
    job = Job.objects.get()
    assert job.done == 5

    phone = open_page(PHONE)
    phone.sign_in(owner.user.username, TEST_PASSWORD)
    phone.goto(reverse("jobs:job-detail", args=[owner.team.slug, job.pk]))
    expect(phone.page.get_by_text("5 of 5 (100 %)")).to_be_visible()
    assert phone.scroll_width() <= 390
    for visited in (browser, phone):
        assert visited.csp_violations == [] and visited.script_errors == []
