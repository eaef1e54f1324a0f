"""Drift on the pages: the "Changed in Convai" badge and filter on the list (a list read
after the mark shows it), and the detail page's "Changed in Convai" panel with "Review
changes" and only the actions the member's role allows. "Keep ours" through the page
against the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from characters import drift
from characters.models import Character
from convai.client import ConvaiClient
from keys.models import ApiKey
from teams.models import Membership, Role
from tests.factories import CharacterFactory

BADGE = "Changed in Convai</span>"


def mark_changed(character: Character, **remote: Any) -> None:
    """What check_drift leaves: the time and the state seen in Convai."""
    state = {**character.snapshot, **remote}
    Character.objects.filter(pk=character.pk).update(
        remote_changed_at=timezone.now(), remote_state=state
    )


def list_url(member: Membership, **query: str) -> str:
    url = reverse("characters:character-list", kwargs={"team_slug": member.team.slug})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def detail_url(character: Character) -> str:
    return reverse("characters:character-detail", args=[character.team.slug, character.pk])


@pytest.fixture
def usable_key(make_member: Callable[..., Membership]) -> ApiKey:
    owner = make_member(Role.EDITOR)
    return ApiKey.objects.create(
        owner=owner.user, label="Studio", last_four="abcd", verified_at=timezone.now()
    )


@pytest.mark.django_db
def test_the_badge_shows_on_the_next_list_after_the_mark(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    character = CharacterFactory.create(team=viewer.team, name="Raymond")
    client.force_login(viewer.user)

    assert BADGE not in client.get(list_url(viewer)).content.decode()  # a list before the mark
    mark_changed(character, character_name="Red")
    assert BADGE in client.get(list_url(viewer)).content.decode()


@pytest.mark.django_db
def test_the_filter_shows_only_changed_characters(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    changed = CharacterFactory.create(team=viewer.team, name="Changed one")
    CharacterFactory.create(team=viewer.team, name="Quiet one")
    mark_changed(changed, character_name="Elsewhere")
    client.force_login(viewer.user)

    page = client.get(list_url(viewer, changed="on")).content.decode()
    htmx = client.get(list_url(viewer, changed="on"), headers={"HX-Request": "true"})

    assert "Changed one" in page and "Quiet one" not in page
    assert 'name="changed"' in page and "checked" in page
    assert "Changed one" in htmx.content.decode() and "Quiet one" not in htmx.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "actions"), [(Role.VIEWER, False), (Role.EDITOR, True), (Role.ADMIN, True)]
)
def test_the_detail_page_offers_a_review_and_only_allowed_actions(
    client: Client,
    make_member: Callable[..., Membership],
    usable_key: ApiKey,
    role: str,
    actions: bool,
) -> None:
    member = make_member(role)
    character = CharacterFactory.create(
        team=member.team, name="Raymond", backstory="Old line.\n", bound_key=usable_key
    )
    mark_changed(character, character_name="Red", backstory="New line.\n")
    client.force_login(member.user)

    html = client.get(detail_url(character)).content.decode()

    assert "Changed in Convai since" in html and "Review changes" in html
    assert "Last saved here (version 1)" in html and "In Convai now" in html
    assert "New line." in html and "Red" in html
    assert ("Take Convai's version</button>" in html) is actions
    assert ("Keep ours</button>" in html) is actions
    if not actions:
        assert "An editor of" in html


@pytest.mark.django_db
def test_a_list_only_sighting_says_the_backstory_is_not_read_yet(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    character = CharacterFactory.create(team=viewer.team, name="Raymond")
    state = {k: v for k, v in character.snapshot.items() if k != "backstory"}
    Character.objects.filter(pk=character.pk).update(
        remote_changed_at=timezone.now(), remote_state={**state, "character_name": "Red"}
    )
    client.force_login(viewer.user)

    html = client.get(detail_url(character)).content.decode()

    assert "The backstory in Convai was not read yet" in html


@pytest.mark.django_db
def test_no_panel_without_drift(client: Client, make_member: Callable[..., Membership]) -> None:
    viewer = make_member(Role.VIEWER)
    character = CharacterFactory.create(team=viewer.team)
    client.force_login(viewer.user)

    assert "Changed in Convai since" not in client.get(detail_url(character)).content.decode()


@pytest.mark.django_db(transaction=True)
def test_keep_ours_through_the_page(
    client: Client, editor: Membership, create: Callable[..., Any], sandbox: str, editor_key: Any
) -> None:
    character = create(name="Raymond").character
    ConvaiClient(editor_key.raw, base_url=sandbox, backoff=0).update_character(
        character.convai_id, name="Red"
    )
    drift.run_drift_pass()
    client.force_login(editor.user)
    url = reverse("characters:character-keep-ours", args=[editor.team.slug, character.pk])

    stale = client.post(url, {"version": "7"})  # a version that is not the current one
    assert "saved this character meanwhile" in " ".join(
        str(m) for m in get_messages(stale.wsgi_request)
    )
    response = client.post(url, {"version": str(character.version)})

    assert response.status_code == 302
    character.refresh_from_db()
    assert character.remote_changed_at is None and character.version == 2
    assert "Kept ours" in " ".join(str(m) for m in get_messages(response.wsgi_request))
