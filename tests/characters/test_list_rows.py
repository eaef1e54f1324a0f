"""The list's rows: new markup after a deploy is served at once (no row is cached, not even
in the shared cache), the same actions as the detail page (characters.presenters), and
a filter form whose invalid values are left out, never a 500."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from keys.models import ApiKey
from teams.models import Membership, Role
from tests.factories import CharacterFactory

pytestmark = pytest.mark.django_db

LIST = "characters/character_list.html"


def _usable(member: Membership, **fields: object) -> object:
    key = ApiKey.objects.create(owner=member.user, label="Studio", last_four="1a2b")
    return CharacterFactory.create(
        team=member.team, bound_key=key, created_by=member.user, **fields
    )


def _templates_from(directory: Path) -> list[dict[str, object]]:
    """The project's template settings with `directory` searched first."""
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [str(directory), *templates[0]["DIRS"]]
    return templates


def _list(client: Client, member: Membership, query: str = "") -> str:
    url = reverse("characters:character-list", args=[member.team.slug]) + query
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_new_row_markup_is_served_at_once_by_the_next_release(
    client: Client, make_member: Callable[..., Membership], tmp_path: Path
) -> None:
    """A deploy that changes the row's markup, with the same shared cache: the new process
    serves the new markup (rows were memoized in the cache once, keyed on the template)."""
    cache.clear()
    member = make_member(Role.ADMIN)
    _usable(member, name="Ada")
    client.force_login(member.user)
    source = Path(settings.BASE_DIR, "templates", LIST).read_text()
    assert '<td data-label="Created by"' in source
    target = tmp_path / LIST
    target.parent.mkdir(parents=True)
    shutil.copy(Path(settings.BASE_DIR, "templates", LIST), target)

    with override_settings(TEMPLATES=_templates_from(tmp_path)):  # the running release
        assert 'data-label="Made by"' not in _list(client, member)

    # The next release, in a new process (fresh template loaders), with the same cache.
    target.write_text(source.replace('data-label="Created by"', 'data-label="Made by"'))
    with override_settings(TEMPLATES=_templates_from(tmp_path)):
        assert 'data-label="Made by"' in _list(client, member)


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
