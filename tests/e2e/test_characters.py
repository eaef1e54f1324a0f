"""Characters in a real browser, against the sandbox on the live server over real HTTP: create
one with the voice picker, edit it, meet a drift (changed behind our back in the sandbox) and a
conflict (two browsers), clone it through the dialog, delete the copy by typing its name, import
one by exact name, and rebind one whose key was revoked.

Every test ends with no CSP violation and no script error; the pages it visits are also checked
for horizontal scrolling on a 390 px wide phone screen. Screenshots of the list, a detail page,
the edit form with a drift and the delete dialog go to /tmp/shots/e2e/ at 1280 and 390 px.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from characters import copying
from characters.models import Character
from keys.services import revoke_api_key
from sandbox import emulator
from sandbox.models import SandboxCharacter
from sandbox.services import create_sandbox_key
from teams.models import Membership, Role
from tests.e2e.conftest import PHONE, BrowserPage
from tests.e2e.support import (
    BACKSTORY,
    CLYDE,
    CLYDE_VALUE,
    GLINDA_VALUE,
    AddKey,
    arrived,
    clean,
    detail_url,
    dialog,
    fits_phone,
    flash,
    h1,
    list_url,
    make_character,
    remote,
    sandbox_key,
    shoot,
    signed_in,
)
from tests.factories import MembershipFactory

pytestmark = pytest.mark.e2e

# --- 1. Create with the voice picker ---------------------------------------------------------


def test_add_a_key_then_create_a_character_with_the_voice_picker(
    open_page: Any, owner: Membership, sandbox: str
) -> None:
    raw_key = create_sandbox_key("studio-e2e")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    # No key yet: the characters page (in the main navigation) says to add one first.
    page.get_by_role("navigation", name="Main", exact=True).get_by_role(
        "link", name="Characters"
    ).click()
    page.wait_for_url(f"**{list_url(owner)}")
    expect(h1(browser_page)).to_have_text("Characters")
    expect(page.get_by_role("heading", name="No characters yet")).to_be_visible()
    fits_phone(browser_page)
    page.locator("main").get_by_role("link", name="Add your API key").first.click()
    page.wait_for_url(f"**{reverse('keys:list')}*")

    page.get_by_label("Label").fill("Studio production")
    page.get_by_label("Convai API key").fill(raw_key)
    page.get_by_role("button", name="Verify and save").click()
    expect(page.locator(".messages .alert-success")).to_contain_text("Studio production")

    # With a key, the empty list offers to create the first character.
    browser_page.goto(list_url(owner))
    page.locator(".page-actions").get_by_role("link", name="New character").click()
    page.wait_for_url("**/characters/new/")
    expect(h1(browser_page)).to_have_text("New character")
    fits_phone(browser_page)

    page.get_by_role("textbox", name="Name").fill("Raymond Keeper")
    # The voice picker: search narrows the list (server-side, through htmx), then pick.
    voices = page.locator("#id_voice_type")
    expect(page.locator("#voice-count")).to_contain_text("All ")
    page.get_by_label("Search voices").fill("clyde")
    expect(page.locator("#voice-count")).to_contain_text("1 of ")
    expect(voices.locator("option")).to_have_count(1)
    voices.select_option(label=CLYDE)
    page.get_by_role("textbox", name="Backstory").fill(BACKSTORY)
    page.get_by_role("textbox", name="Actions").fill("Wave\nSalute")
    expect(page.get_by_label("Owned by")).to_contain_text("Studio production")
    clean(browser_page)
    page.get_by_role("button", name="Create character").click()

    arrived(browser_page, re.compile(r".*/characters/\d+/$"))
    character = Character.objects.get(team=owner.team, name="Raymond Keeper")
    assert page.url.endswith(detail_url(character))
    expect(h1(browser_page)).to_contain_text("Raymond Keeper")
    expect(flash(browser_page)).to_contain_text("“Raymond Keeper” was created on Convai.")
    # Convai holds it as typed, with the voice picked.
    stored = remote(character)
    assert stored.character_name == "Raymond Keeper"
    assert stored.voice_type == CLYDE_VALUE
    assert stored.backstory == BACKSTORY
    assert stored.actions == ["Wave", "Salute"]

    # The Convai ID is shown with a button that copies it.
    main = page.locator("main")
    expect(page.get_by_label("Convai character ID")).to_have_value(character.convai_id)
    copy = main.get_by_role("button", name="Copy ID")
    expect(copy).to_be_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == character.convai_id
    fits_phone(browser_page)
    clean(browser_page)


# --- 2. Edit ---------------------------------------------------------------------------------


def test_edit_the_backstory(open_page: Any, owner: Membership, add_key: AddKey) -> None:
    api_key, _ = add_key(owner, "Studio production")
    character = make_character(owner, api_key, "Raymond Keeper")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    browser_page.goto(detail_url(character))
    page.locator("main").get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url("**/edit/")
    expect(h1(browser_page)).to_have_text("Edit Raymond Keeper")
    expect(page.get_by_role("textbox", name="Backstory")).to_have_value(BACKSTORY)
    expect(page.locator("#id_voice_type")).to_have_value(CLYDE_VALUE)
    fits_phone(browser_page)

    new_backstory = "Raymond now runs a small ferry.\nHe still loves storms."
    page.get_by_role("textbox", name="Backstory").fill(new_backstory)
    page.get_by_role("button", name="Save changes").click()
    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_contain_text("Saved backstory of “Raymond Keeper”.")
    expect(page.locator("main")).to_contain_text("Raymond now runs a small ferry.")
    assert remote(character).backstory == new_backstory
    character.refresh_from_db()
    assert character.backstory == new_backstory
    clean(browser_page)


# --- 3. Drift --------------------------------------------------------------------------------


def test_drift_from_the_sandbox_then_overwrite(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    api_key, raw = add_key(owner, "Studio production")
    character = make_character(owner, api_key, "Raymond Keeper")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    browser_page.goto(reverse("characters:character-edit", args=[owner.team.slug, character.pk]))
    expect(h1(browser_page)).to_have_text("Edit Raymond Keeper")

    # Meanwhile, someone changes the backstory in Convai's playground.
    emulator.update(
        sandbox_key(raw),
        {"charID": character.convai_id, "backstory": "Changed in the playground."},
    )

    mine = "Raymond keeps the lighthouse and a cat."
    page.get_by_role("textbox", name="Backstory").fill(mine)
    page.get_by_role("button", name="Save changes").click()

    panel = page.locator("section").filter(
        has=page.get_by_role("heading", name="Changed in Convai since it was last saved here")
    )
    expect(panel).to_be_visible()
    expect(panel.locator(".change-title")).to_have_text(["Backstory"])
    expect(panel).to_contain_text("Changed in the playground.")
    # Nothing was sent; the member's input is kept.
    assert remote(character).backstory == "Changed in the playground."
    expect(page.get_by_role("textbox", name="Backstory")).to_have_value(mine)
    fits_phone(browser_page)
    shoot(browser_page, "edit-drift")

    panel.get_by_role("button", name="Overwrite Convai's changes").click()
    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_contain_text("Saved backstory of “Raymond Keeper”.")
    expect(page.locator("main")).to_contain_text(mine)
    assert remote(character).backstory == mine
    clean(browser_page)


# --- 4. Conflict -----------------------------------------------------------------------------


def open_conflict(open_page: Any, owner: Membership, character: Character) -> Any:
    """Maya (Owner) and Lee (Editor) open the edit form in two browsers; Maya saves a new
    backstory; Lee renames it and saves: Lee sees Maya's change. Returns (maya, lee)."""
    writer = MembershipFactory.create(
        team=owner.team, role=Role.EDITOR, user__first_name="Lee", user__last_name="Park"
    )
    edit_url = reverse("characters:character-edit", args=[owner.team.slug, character.pk])
    maya = signed_in(open_page, owner)
    lee = signed_in(open_page, writer)
    maya.goto(edit_url)
    lee.goto(edit_url)
    expect(h1(maya)).to_have_text("Edit Raymond Keeper")
    expect(h1(lee)).to_have_text("Edit Raymond Keeper")

    # Maya saves first.
    maya.page.get_by_role("textbox", name="Backstory").fill("Maya's backstory: a ferry captain.")
    maya.page.get_by_role("button", name="Save changes").click()
    arrived(maya, detail_url(character))
    expect(flash(maya)).to_contain_text("Saved backstory")

    # Lee, on the form opened before, renames it and saves: Maya's change is shown.
    lee.page.get_by_role("textbox", name="Name").fill("Raymond the Brave")
    lee.page.get_by_role("button", name="Save changes").click()
    panel = lee.page.locator("section").filter(
        has=lee.page.get_by_role("heading", name=re.compile(r"Maya Okafor saved this character"))
    )
    expect(panel).to_be_visible()
    row = panel.locator("tbody tr").filter(has_text="Backstory")
    expect(row).to_contain_text("Maya's backstory: a ferry captain.")
    expect(row).to_contain_text("Raymond is a retired lighthouse keeper.")
    # Lee's input is kept; next to the backstory, Maya's saved one.
    expect(lee.page.get_by_role("textbox", name="Name")).to_have_value("Raymond the Brave")
    note = lee.page.locator(".conflict-note").filter(has_text="Backstory saved by Maya Okafor")
    expect(note).to_be_visible()
    assert remote(character).character_name == "Raymond Keeper", "nothing sent on a conflict"
    return maya, lee


def save_again_after_merging(lee: BrowserPage, character: Character) -> None:
    """Lee merges (takes Maya's backstory) and saves again: it goes through."""
    lee.page.get_by_role("textbox", name="Backstory").fill("Maya's backstory: a ferry captain.")
    lee.page.get_by_role("button", name="Save changes").click()
    arrived(lee, detail_url(character))
    expect(flash(lee)).to_contain_text("Saved name of “Raymond the Brave”.")
    expect(h1(lee)).to_contain_text("Raymond the Brave")
    stored = remote(character)
    assert stored.character_name == "Raymond the Brave"
    assert stored.backstory == "Maya's backstory: a ferry captain."


def test_conflict_between_two_browsers(open_page: Any, owner: Membership, add_key: AddKey) -> None:
    api_key, _ = add_key(owner, "Studio production")
    character = make_character(owner, api_key, "Raymond Keeper", language_codes=["en-US"])
    maya, lee = open_conflict(open_page, owner, character)
    panel_rows = lee.page.locator("section").filter(has_text="saved this character")
    expect(panel_rows.locator("tbody tr td:first-child")).to_have_text(["Backstory"])
    fits_phone(lee)
    save_again_after_merging(lee, character)
    clean(maya)
    clean(lee)


def test_conflict_on_a_character_created_without_languages(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    """Created with no language chosen (the create form's default), Convai holds its default
    (en-US) but the record holds none; Maya's save reads en-US back, so Lee's stale form,
    kept as typed after the conflict, must still save."""
    api_key, _ = add_key(owner, "Studio production")
    character = make_character(owner, api_key, "Raymond Keeper", language_codes=[])
    maya, lee = open_conflict(open_page, owner, character)
    save_again_after_merging(lee, character)
    clean(maya)
    clean(lee)


# --- 5. Clone --------------------------------------------------------------------------------


def test_clone_through_the_dialog(open_page: Any, owner: Membership, add_key: AddKey) -> None:
    api_key, raw = add_key(owner, "Studio production")
    character = make_character(owner, api_key, "Raymond Keeper")
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    browser_page.goto(detail_url(character))
    page.locator(".page-actions").get_by_role("link", name="Clone").click()
    expect(dialog(browser_page)).to_have_attribute("open", "")
    assert page.url.endswith(detail_url(character)), "the dialog opens on the same page"
    name = dialog(browser_page).get_by_label("Name of the copy")
    expect(name).to_have_value("Raymond Keeper (copy)")
    fits_phone(browser_page)
    name.fill("Raymond Understudy")
    dialog(browser_page).get_by_role("button", name="Clone character").click()

    expect(h1(browser_page)).to_contain_text("Raymond Understudy")
    copy = Character.objects.get(team=owner.team, name="Raymond Understudy")
    assert page.url.endswith(detail_url(copy))
    expect(h1(browser_page)).to_contain_text("Raymond Understudy")
    expect(flash(browser_page)).to_contain_text(
        "“Raymond Understudy” is a copy of “Raymond Keeper”."
    )
    account = sandbox_key(raw).account
    names = set(
        SandboxCharacter.objects.filter(owner=account).values_list("character_name", flat=True)
    )
    assert names == {"Raymond Keeper", "Raymond Understudy"}
    assert remote(copy).backstory == BACKSTORY
    fits_phone(browser_page)
    clean(browser_page)


# --- 6. Delete -------------------------------------------------------------------------------


def test_delete_the_clone_by_typing_its_name(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    api_key, _ = add_key(owner, "Studio production")
    original = make_character(owner, api_key, "Raymond Keeper")
    clone = copying.clone_character(
        actor=owner, character_id=original.pk, new_name="Raymond Understudy"
    ).character
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    browser_page.goto(list_url(owner))
    row = page.locator(f"#character-{clone.pk}")
    expect(row).to_contain_text("Raymond Understudy")
    row.get_by_role("link", name="Delete Raymond Understudy").click()
    expect(dialog(browser_page)).to_have_attribute("open", "")
    box = dialog(browser_page)
    expect(box.get_by_role("heading").first).to_contain_text("Raymond Understudy")
    confirm = box.get_by_label(re.compile(r"^Type Raymond Understudy to confirm"))
    delete = box.get_by_role("button", name="Delete on Convai")
    expect(delete).to_be_disabled()
    confirm.fill("Raymond")
    expect(delete).to_be_disabled()
    confirm.fill("Raymond Understudy")
    expect(delete).to_be_enabled()
    fits_phone(browser_page)
    shoot(browser_page, "delete-dialog")
    delete.click()

    expect(row).to_have_count(0)
    expect(dialog(browser_page)).not_to_have_attribute("open", "")
    expect(flash(browser_page)).to_contain_text("“Raymond Understudy” was deleted on Convai.")
    expect(page.locator(f"#character-{original.pk}")).to_be_visible()
    assert not SandboxCharacter.objects.filter(character_id=clone.convai_id).exists()
    assert remote(original).character_name == "Raymond Keeper"

    # A fresh load: gone from the list; its own page says it was deleted.
    browser_page.goto(list_url(owner))
    expect(page.locator("main")).not_to_contain_text("Raymond Understudy")
    browser_page.goto(detail_url(clone))
    expect(h1(browser_page)).to_contain_text("Deleted")
    expect(page.locator("main")).to_contain_text("It no longer exists on Convai.")
    expect(page.locator("main").get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    fits_phone(browser_page)
    clean(browser_page)


# --- 7. Import -------------------------------------------------------------------------------


def test_import_by_exact_name(open_page: Any, owner: Membership, add_key: AddKey) -> None:
    api_key, raw = add_key(owner, "Studio production")
    made = SandboxCharacter.objects.create(
        owner=sandbox_key(raw).account,
        character_name="Glinda of the North",
        voice_type=GLINDA_VALUE,
        backstory="A good witch who travels by bubble.",
        actions=["Wave"],
        language_codes=["en-US"],
    )
    browser_page = signed_in(open_page, owner)
    page = browser_page.page

    browser_page.goto(list_url(owner))
    page.locator(".page-actions").get_by_role("link", name="Import from Convai").click()
    page.wait_for_url("**/characters/import/")
    fits_phone(browser_page)
    page.get_by_label("Convai character ID or exact name").fill("Glinda of the North")
    page.get_by_role("button", name="Look it up").click()
    expect(page.locator("main")).to_contain_text("A good witch who travels by bubble.")
    fits_phone(browser_page)
    page.get_by_role("button", name="Import “Glinda of the North”").click()

    arrived(browser_page, re.compile(r".*/characters/\d+/$"))
    character = Character.objects.get(team=owner.team, convai_id=made.character_id)
    assert page.url.endswith(detail_url(character))
    expect(h1(browser_page)).to_contain_text("Glinda of the North")
    expect(flash(browser_page)).to_contain_text("Imported “Glinda of the North” from Convai.")
    assert character.bound_key_id == api_key.pk
    assert character.backstory == "A good witch who travels by bubble."
    clean(browser_page)


# --- 8. Rebind -------------------------------------------------------------------------------


def test_rebind_after_the_key_is_revoked(
    open_page: Any, owner: Membership, add_key: AddKey
) -> None:
    lee = MembershipFactory.create(
        team=owner.team, role=Role.EDITOR, user__first_name="Lee", user__last_name="Park"
    )
    sam = MembershipFactory.create(
        team=owner.team, role=Role.EDITOR, user__first_name="Sam", user__last_name="Rivera"
    )
    lee_key, _ = add_key(lee, "Lee's laptop", account="Studio")
    sam_key, sam_raw = add_key(sam, "Sam's desk", account="Studio")
    character = make_character(lee, lee_key, "Raymond Keeper")
    revoke_api_key(actor=lee.user, api_key_id=lee_key.pk)

    browser_page = signed_in(open_page, owner)
    page = browser_page.page
    browser_page.goto(list_url(owner))
    row = page.locator(f"#character-{character.pk}")
    expect(row.locator(".badge-danger")).to_have_text("No usable key")

    browser_page.goto(detail_url(character))
    main = page.locator("main")
    expect(main).to_contain_text(re.compile("no usable key", re.IGNORECASE))
    expect(main.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    fits_phone(browser_page)

    main.get_by_role("link", name="Rebind it to another member's key").click()
    expect(dialog(browser_page)).to_have_attribute("open", "")
    box = dialog(browser_page)
    choice = box.get_by_label("New key")
    expect(choice).to_contain_text(f"Sam's desk (…{sam_raw[-4:]}) · Sam Rivera")
    expect(choice).not_to_contain_text("Lee's laptop")
    fits_phone(browser_page)
    # The label may carry "· same Convai account": pick the option by its text, not all of it.
    sam = choice.locator("option", has_text=f"Sam's desk (…{sam_raw[-4:]}) · Sam Rivera")
    choice.select_option(value=sam.get_attribute("value"))
    box.get_by_role("button", name="Rebind", exact=True).click()

    arrived(browser_page, detail_url(character))
    expect(flash(browser_page)).to_contain_text(
        f"“Raymond Keeper” now works through Sam's desk (…{sam_raw[-4:]})"
    )
    expect(main).not_to_contain_text(re.compile("no usable key", re.IGNORECASE))
    expect(main.get_by_role("link", name="Edit", exact=True)).to_be_visible()
    character.refresh_from_db()
    assert character.bound_key_id == sam_key.pk
    browser_page.goto(list_url(owner))
    expect(page.locator(f"#character-{character.pk} .badge-danger")).to_have_count(0)
    clean(browser_page)


# --- 9. Phone, and screenshots ---------------------------------------------------------------


def test_list_and_detail_on_a_phone(open_page: Any, owner: Membership, add_key: AddKey) -> None:
    api_key, _ = add_key(owner, "Studio production")
    character = make_character(
        owner,
        api_key,
        "Raymond Keeper the Very Long-Named Lighthouse Guardian of the Northern Coast",
        language_codes=["en-US", "de-DE"],
    )
    make_character(owner, api_key, "Glinda", voice_type=GLINDA_VALUE)
    browser_page = signed_in(open_page, owner, PHONE)
    page = browser_page.page

    browser_page.goto(list_url(owner))
    expect(page.locator("tbody tr")).to_have_count(2)
    assert browser_page.scroll_width() <= PHONE["width"]
    create = page.locator(".page-actions").get_by_role("link", name="New character")
    expect(create).to_be_visible()
    expect(create).to_be_in_viewport()
    clean(browser_page)
    shoot(browser_page, "list")

    browser_page.goto(detail_url(character))
    expect(h1(browser_page)).to_contain_text("Raymond Keeper")
    assert browser_page.scroll_width() <= PHONE["width"]
    clean(browser_page)
    shoot(browser_page, "detail")
