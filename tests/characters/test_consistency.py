"""Issue 12 §7, the parts that talk to Convai (the live sandbox over HTTP): voices and
languages by name in diffs, import all and the bundle preview; natural order in both previews;
select all / none there; the "Overwrite" message; the list's count after a delete from it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from characters import services
from characters.bundles.schema import SCHEMA
from characters.models import Character
from teams.models import Membership
from tests.characters.support import remote
from tests.jobs.support import seed_remote
from tests.support.characters import Key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]

HTMX = {"HTTP_HX_REQUEST": "true"}
GUY = "GuyNeural"  # Convai's "Guy Male American English Voice"


@pytest.fixture
def page(client: Client, editor: Membership, editor_key: Key) -> Client:
    client.force_login(editor.user)
    return client


@pytest.fixture(autouse=True)
def uploads(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path / "bundles"


def url(name: str, editor: Membership, *args: Any) -> str:
    return reverse(f"characters:{name}", args=[editor.team.slug, *args])


def edit(page: Client, editor: Membership, character: Character, **changes: Any) -> Any:
    character.refresh_from_db()
    data = {
        "name": character.name,
        "voice_type": character.voice_type,
        "backstory": character.backstory,
        "actions": "\n".join(character.actions),
        "language_codes": character.language_codes,
        "version": character.version,
        **changes,
    }
    return page.post(url("character-edit", editor, character.pk), data, follow=True)


def test_history_and_restore_name_voices_and_languages(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create(voice_type="MALE", language_codes=["en-US"]).character
    edit(page, editor, character, voice_type=GUY, language_codes=["en-US", "de-DE"])

    history = page.get(url("character-history", editor, character.pk)).content.decode()
    assert "Guy Male American English Voice" in history
    assert "English, German" in history
    assert ">de-DE<" not in history and f">{GUY}<" not in history

    restore = page.get(url("character-restore", editor, character.pk, 1), **HTMX)
    dialog = restore.content.decode()
    assert "Guy Male American English Voice" in dialog and "German" in dialog
    assert f">{GUY}<" not in dialog


def test_import_all_names_voices_sorts_naturally_and_offers_select_all(
    page: Client, editor: Membership, editor_key: Key
) -> None:
    for name in ("NPC 10", "NPC 2", "NPC 1"):
        seed_remote(editor_key, 1, prefix=name)
    remote_rows = list(seed_remote(editor_key, 1, prefix="Guy"))
    remote_rows[0].voice_type = GUY
    remote_rows[0].save()

    html = page.get(
        reverse("jobs:import-all", args=[editor.team.slug]), {"key": str(editor_key.pk)}
    ).content.decode()

    assert "Guy Male American English Voice" in html
    assert f">{GUY}<" not in html
    positions = [html.index(f"NPC {n} 001") for n in (1, 2, 10)]
    assert positions == sorted(positions), "NPC 2 comes before NPC 10"
    assert 'data-select-all="import-all"' in html and 'data-select-none="import-all"' in html
    assert html.count('data-select-group="import-all"') == 4


def test_the_bundle_preview_names_voices_sorts_naturally_and_offers_select_all(
    page: Client, editor: Membership, editor_key: Key
) -> None:
    entries = [
        {
            "convai_id": f"guard-{number}",
            "name": name,
            "voice_type": GUY,
            "backstory": "B.",
            "actions": ["Wave"],
            "language_codes": ["en-US"],
        }
        for number, name in enumerate(("Guard 10", "Guard 2", "Guard 1"))
    ]
    data = json.dumps({"schema": SCHEMA, "characters": entries}).encode()
    uploaded = page.post(
        reverse("bundles:import", args=[editor.team.slug]),
        {"bundle": SimpleUploadedFile("b.json", data, "application/json"), "key": editor_key.pk},
    )
    assert uploaded.status_code == 302, uploaded.content.decode()[:2000]
    html = page.get(uploaded["Location"]).content.decode()

    assert "Guy Male American English Voice" in html and f">{GUY}<" not in html
    positions = [html.index(f">Guard {n}<") for n in (1, 2, 10)]
    assert positions == sorted(positions)
    # Shown by app.js: without script there are no buttons that do nothing.
    assert 'data-select-all="bundle" hidden' in html and 'data-select-none="bundle" hidden' in html
    assert html.count('data-select-group="bundle"') == 3


def test_the_overwrite_message_names_every_field_sent(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create(name="Raymond").character
    stored = remote(character)
    stored.backstory = "Changed in the playground."
    stored.voice_type = "FEMALE"
    stored.save()

    done = edit(page, editor, character, name="Red", overwrite_drift="1")

    text = " ".join(str(m) for m in done.context["messages"])
    assert "Saved name, voice, backstory of “Red”." in text
    assert "Convai's own changes to voice, backstory were replaced" in text
    assert remote(character).backstory == character.backstory


def test_a_delete_from_the_list_refreshes_the_count_above_it(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create(name="Gone Soon").character
    create(name="Stays")
    listing = page.get(url("character-list", editor)).content.decode()
    assert "2 characters" in listing
    # The count reloads the results (with the list's own URL) when a delete says so.
    assert 'hx-trigger="characters-changed from:body"' in listing

    deleted = page.post(
        url("character-delete", editor, character.pk),
        {"confirm_name": "Gone Soon", "from": "list"},
        **HTMX,
    )
    assert deleted.status_code == 200
    assert deleted["HX-Trigger"] == "characters-changed"
    assert "1 character" in page.get(url("character-list", editor), **HTMX).content.decode()
