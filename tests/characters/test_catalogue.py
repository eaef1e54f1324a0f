"""Display names of voices and languages without a Convai call: what the client already cached
for a key, else Convai's public tables shipped in convai/data/ (display only; forms still
validate against the live catalogue). Against the live sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from characters import catalogue, services
from characters.catalogue import display_names, load_catalogue, peek
from convai.client import catalogue_cache_key
from sandbox.services import set_fault
from teams.models import Membership
from tests.support.characters import Key, record_requests

Create = Callable[..., services.Saved]
GUY = "Guy Male American English Voice"


def test_without_a_key_the_shipped_tables_name_voices_and_languages() -> None:
    voices, languages = display_names()
    assert voices["GuyNeural"] == {"name": GUY, "gender": "MALE", "section": "Azure Voices"}
    assert languages["en-US"] == "English"
    assert len(voices) > 300 and len(languages) > 10


def test_peek_with_nothing_cached_falls_back_without_asking_convai(
    editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_requests(monkeypatch)
    peeked = peek(editor_key.api_key)
    assert sent == []
    assert peeked.voice("GuyNeural") is not None
    assert peeked.language_name("en-US") == "English"
    assert peeked.error == ""


def test_peek_reads_what_the_client_cached_for_the_key(
    editor_key: Key, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live catalogue that differs from the shipped tables (a voice added since) wins."""
    cache.set(
        catalogue_cache_key("voices", sandbox, editor_key.raw),
        {"Studio": [{"Studio Narrator": {"voice_value": "STUDIO-1", "gender": "FEMALE"}}]},
    )
    sent = record_requests(monkeypatch)

    voices, languages = display_names(editor_key.api_key)

    assert sent == []
    assert voices == {
        "STUDIO-1": {"name": "Studio Narrator", "gender": "FEMALE", "section": "Studio"}
    }
    assert languages["en-US"] == "English"  # nothing cached: the shipped table


def test_after_a_form_loaded_the_catalogue_peek_uses_it(
    editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_catalogue(editor_key.api_key)
    sent = record_requests(monkeypatch)
    peeked = peek(editor_key.api_key)
    assert sent == []
    assert [v.voice_value for v in peeked.voices] == [v.voice_value for v in loaded.voices]


def test_a_revoked_key_is_not_opened_and_the_tables_answer(
    editor: Membership, editor_key: Key
) -> None:
    from keys.services import revoke_api_key

    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    editor_key.api_key.refresh_from_db()
    assert display_names(editor_key.api_key)[1]["en-US"] == "English"


def test_the_detail_page_names_voice_and_languages_with_a_cold_cache(
    create: Create, editor: Membership, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    character = create(voice_type="GuyNeural", language_codes=["en-US"]).character
    cache.clear()
    client.force_login(editor.user)
    sent = record_requests(monkeypatch)

    html = client.get(
        reverse("characters:character-detail", args=[character.team.slug, character.pk])
    ).content.decode()

    assert sent == []  # a page that shows names never asks Convai
    assert GUY in html
    assert ">English<" in html


def test_the_form_names_the_current_voice_and_languages_when_convai_is_down(
    create: Create, editor: Membership, editor_key: Key, client: Client
) -> None:
    character = create(voice_type="GuyNeural", language_codes=["en-US"]).character
    cache.clear()
    set_fault(key_label=editor_key.sandbox_label, outage=True)
    client.force_login(editor.user)

    html = client.get(
        reverse("characters:character-edit", args=[character.team.slug, character.pk])
    ).content.decode()

    assert "could not be loaded" in html
    assert f"{GUY} · Male (current)" in html
    assert "English" in html


def test_the_shipped_tables_are_read_once() -> None:
    assert catalogue.shipped_catalogue() is catalogue.shipped_catalogue()
