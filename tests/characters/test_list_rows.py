"""The list's rows: built for each request (nothing cached, so a deploy's markup shows at
once), the same actions as the detail page (characters.presenters), and
a filter form whose invalid values are left out, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.models import ApiKey
from teams.models import Membership, Role
from tests.factories import CharacterFactory

pytestmark = pytest.mark.django_db


def _usable(member: Membership, **fields: object) -> object:
    key = ApiKey.objects.create(owner=member.user, label="Studio", last_four="1a2b")
    return CharacterFactory.create(
        team=member.team, bound_key=key, created_by=member.user, **fields
    )


def _list(client: Client, member: Membership, query: str = "") -> str:
    url = reverse("characters:character-list", args=[member.team.slug]) + query
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_list_keeps_nothing_in_the_cache(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    """Rows and filter options are built for each request (characters.presenters): new
    markup after a deploy, or a change another server made, shows at once, with no cache key
    to get right (rows were once memoized under the template's digest)."""
    member = make_member(Role.ADMIN)
    _usable(member, name="Ada", voice_type="MALE")
    client.force_login(member.user)
    cache.clear()
    assert "Ada" in _list(client, member)
    assert "Ada" in _list(client, member, "?voice=MALE")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {settings.CACHE_TABLE}")
        assert cursor.fetchone() == (0,)


def test_the_list_offers_what_the_detail_page_offers_for_a_character_gone_from_convai(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    """One rule for both pages: nothing goes through Convai for a character it no longer has
    (the list offered Clone and Delete, which the detail page hides)."""
    cache.clear()
    member = make_member(Role.ADMIN)
    gone = _usable(member, name="Gone", remote_missing_at=timezone.now())
    here = _usable(member, name="Here")
    client.force_login(member.user)
    html = _list(client, member)
    for character, shown in ((gone, False), (here, True)):
        slug, pk = member.team.slug, character.pk  # type: ignore[attr-defined]
        for name in ("clone", "delete"):
            url = reverse(f"characters:character-{name}", args=[slug, pk])
            assert (f'href="{url}"' in html) is shown, (character, name)
    gone_pk = gone.pk  # type: ignore[attr-defined]
    detail = client.get(reverse("characters:character-detail", args=[slug, gone_pk]))
    clone = reverse("characters:character-clone", args=[slug, gone_pk])
    assert detail.status_code == 200 and clone not in detail.content.decode()


def test_invalid_filters_are_left_out_and_valid_ones_still_apply(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    member = make_member(Role.VIEWER)
    CharacterFactory.create(team=member.team, name="Ada", voice_type="VoiceA")
    CharacterFactory.create(team=member.team, name="Bob", voice_type="VoiceB")
    client.force_login(member.user)
    html = _list(client, member, "?voice=VoiceA&sort=sideways&q=" + "x" * 201 + "&page=zz")
    assert ">Ada</a>" in html
    assert ">Bob</a>" not in html
