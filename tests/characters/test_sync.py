"""Sync from Convai on one character: get, compare with the snapshot, a `synced` revision only
when something changed (an edited field or any other field of the snapshot), a message that
says what changed or "already in step"; a character gone from Convai is flagged, never
deleted. Against the live sandbox over HTTP, through the service and the page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from audit.models import Outcome
from characters import services
from characters.models import Character, Revision
from sandbox.models import Listing, SandboxCharacter
from teams.models import Membership, Role
from tests.characters.support import events

pytestmark = pytest.mark.django_db(transaction=True)

Create = Callable[..., services.Saved]


@pytest.fixture
def character(create: Create) -> Character:
    return create(language_codes=["en-US"]).character


def behind_our_back(character: Character, **fields: object) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(**fields)


def sync_url(character: Character) -> str:
    return reverse("characters:character-sync", args=[character.team.slug, character.pk])


def said(response: object) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


def test_nothing_changed_stores_no_revision(character: Character, editor: Membership) -> None:
    saved = services.take_remote_version(actor=editor, character_id=character.pk)

    assert saved.changes == []
    character.refresh_from_db()
    assert character.version == 1
    assert list(character.revisions.values_list("number", flat=True)) == [1]
    (event,) = events("character.sync")
    assert event.outcome == Outcome.SUCCESS and event.details["in_step"] is True


def test_a_playground_edit_becomes_a_synced_revision(
    character: Character, editor: Membership
) -> None:
    behind_our_back(character, backstory="Rewritten in the playground.", character_name="Red")

    saved = services.take_remote_version(actor=editor, character_id=character.pk)

    assert [c.field for c in saved.changes] == ["name", "backstory"]
    character.refresh_from_db()
    assert (character.name, character.backstory, character.version) == (
        "Red",
        "Rewritten in the playground.",
        2,
    )
    latest = character.revisions.first()
    assert latest is not None and latest.reason == Revision.Reason.SYNCED
    assert latest.fields["name"] == "Red"
    (event,) = events("character.sync")
    assert event.details["changes"]["name"] == ["Raymond", "Red"]


def test_a_change_outside_the_edited_fields_is_a_change_too(
    character: Character, editor: Membership
) -> None:
    behind_our_back(character, listing=Listing.PUBLIC)

    saved = services.take_remote_version(actor=editor, character_id=character.pk)

    assert [c.field for c in saved.changes] == ["listing"]
    character.refresh_from_db()
    assert character.snapshot["listing"] == "public" and character.version == 2
    again = services.take_remote_version(actor=editor, character_id=character.pk)
    assert again.changes == []


def test_a_character_gone_from_convai_is_flagged_not_deleted(
    client: Client, character: Character, editor: Membership
) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).delete()
    client.force_login(editor.user)

    response = client.post(sync_url(character))

    assert response.status_code == 302
    assert any("no longer exists on Convai" in m for m in said(response))
    character.refresh_from_db()
    assert character.remote_missing_at is not None and character.deleted_at is None
    assert character.version == 1
    detail = client.get(response["Location"]).content.decode()
    assert "Gone from Convai" in detail and "Check Convai again" in detail


def test_the_page_says_what_changed_or_that_it_is_in_step(
    client: Client, character: Character, editor: Membership
) -> None:
    client.force_login(editor.user)
    detail = reverse("characters:character-detail", args=[character.team.slug, character.pk])
    assert "Sync from Convai" in client.get(detail).content.decode()

    first = client.post(sync_url(character))
    assert said(first) == ["“Raymond” is already in step with Convai: nothing changed."]

    behind_our_back(character, voice_type="FEMALE", listing=Listing.PUBLIC)
    second = client.post(sync_url(character))
    assert said(second)[-1] == (
        "Synced “Raymond” from Convai. Changed there: voice, listing. Stored as version 2."
    )
    html = client.get(detail).content.decode()
    assert "Synced from Convai" in html and "other Convai field" in html


def test_a_viewer_may_not_sync(
    client: Client, character: Character, make_member: Callable[..., Membership]
) -> None:
    behind_our_back(character, character_name="Red")
    viewer = make_member(Role.VIEWER)
    client.force_login(viewer.user)
    assert client.post(sync_url(character)).status_code == 403
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
