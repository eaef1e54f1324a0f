"""Smoke tests of the character pages: each renders for an Editor against the live sandbox,
and the main forms work through the views (the service tests go deeper)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from characters import services
from characters.models import Character
from teams.models import Membership
from tests.characters.support import remote
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def page(client: Client, editor: Membership, editor_key: Key) -> Client:
    client.force_login(editor.user)
    return client


def url(name: str, editor: Membership, *args: Any) -> str:
    return reverse(f"characters:{name}", args=[editor.team.slug, *args])


def test_empty_list_tells_a_new_member_what_to_do(page: Client, editor: Membership) -> None:
    html = page.get(url("character-list", editor)).content.decode()
    assert "No characters yet" in html
    assert url("character-create", editor) in html
    assert url("character-import", editor) in html


def test_every_page_renders(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create(name="Raymond <b>Red</b>").character
    pk = character.pk
    for name, args in [
        ("character-list", ()),
        ("character-create", ()),
        ("character-import", ()),
        ("character-detail", (pk,)),
        ("character-edit", (pk,)),
        ("character-clone", (pk,)),
        ("character-delete", (pk,)),
    ]:
        response = page.get(url(name, editor, *args))
        assert response.status_code == 200, name
        html = response.content.decode()
        assert "Raymond <b>Red</b>" not in html, f"{name} did not escape the name"
    detail = page.get(url("character-detail", editor, pk)).content.decode()
    assert character.convai_id in detail
    assert 'data-copy-target="#convai-id"' in detail


def test_list_search_answers_htmx_with_the_results_only(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    create(name="Raymond")
    create(name="Elizabeth")
    response = page.get(url("character-list", editor), {"q": "eliz"}, **HTMX)
    html = response.content.decode()
    assert "<html" not in html
    assert "Elizabeth" in html and "Raymond" not in html


def test_dialogs_answer_htmx_with_the_confirmation_partial(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    pk = create().character.pk
    for name in ("character-clone", "character-delete"):
        html = page.get(url(name, editor, pk), **HTMX).content.decode()
        assert "<html" not in html and 'id="modal-title"' in html, name


def test_voice_options_filter_server_side(page: Client, editor: Membership) -> None:
    everything = page.get(url("voice-options", editor)).content.decode()
    some = page.get(url("voice-options", editor), {"voice_q": "zzzz-no-such-voice"})
    assert everything.count("<option") > 10
    assert some.content.decode().count("<option") == 0


def test_create_through_the_form(page: Client, editor: Membership, editor_key: Key) -> None:
    response = page.get(url("voice-options", editor))
    voice = response.content.decode().split('<option value="', 1)[1].split('"', 1)[0]
    response = page.post(
        url("character-create", editor),
        {
            "name": "Ada",
            "voice_type": voice,
            "backstory": "Line one.\nLine two.",
            "actions": "Wave\nSit",
            "api_key": str(editor_key.pk),
        },
    )
    character = Character.objects.get(name="Ada")
    assert response.status_code == 302
    assert response["Location"] == url("character-detail", editor, character.pk)
    assert character.actions == ["Wave", "Sit"]


def test_a_long_backstory_is_refused_with_a_message_and_kept(
    page: Client, editor: Membership, editor_key: Key
) -> None:
    backstory = "x" * 10_001
    response = page.post(
        url("character-create", editor),
        {"name": "Ada", "voice_type": "", "backstory": backstory, "api_key": str(editor_key.pk)},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Convai allows up to 10,000" in html
    assert backstory in html
    assert not Character.objects.exists()


def test_edit_shows_drift_and_keeps_the_input(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create().character
    stored = remote(character)
    stored.backstory = "Changed in the playground."
    stored.save()
    response = page.post(
        url("character-edit", editor, character.pk),
        {
            "name": "Raymond the Second",
            "voice_type": character.voice_type,
            "backstory": character.backstory,
            "actions": "Wave",
            "language_codes": character.language_codes,
            "version": character.version,
        },
    )
    html = response.content.decode()
    assert "Changed in Convai since it was last saved here" in html
    assert "Raymond the Second" in html
    assert "Overwrite Convai's changes" in html
    assert url("character-sync", editor, character.pk) in html


def test_delete_from_the_list_removes_the_row(
    page: Client, editor: Membership, create: Callable[..., services.Saved]
) -> None:
    character = create(name="Gone Soon").character
    wrong = page.post(
        url("character-delete", editor, character.pk),
        {"confirm_name": "Gone", "from": "list"},
        **HTMX,
    )
    assert wrong["HX-Retarget"] == "#modal-content"
    right = page.post(
        url("character-delete", editor, character.pk),
        {"confirm_name": "Gone Soon", "from": "list"},
        **HTMX,
    )
    assert right.status_code == 200
    assert "hx-swap-oob" in right.content.decode()
    character.refresh_from_db()
    assert character.is_deleted
    tombstone = page.get(url("character-detail", editor, character.pk)).content.decode()
    assert "Deleted" in tombstone
    assert url("character-edit", editor, character.pk) not in tombstone
