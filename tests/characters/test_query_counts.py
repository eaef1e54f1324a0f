"""The character list costs the same number of queries for 3 characters as for 30 (each with
several revisions), when rendered the way a page does: bound key and its owner, creator, and
whether the key is usable. No Convai call is involved, so no sandbox."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from characters import selectors
from characters.models import Character
from characters.selectors import CharacterFilters
from keys.models import ApiKey
from keys.services import add_api_key, revoke_api_key
from teams.models import Membership, Role, Team
from tests.factories import CharacterFactory, RevisionFactory, TeamFactory

pytestmark = pytest.mark.django_db

AssertQueries = Callable[..., Any]


def populate(team: Team, members: list[Membership], keys: list[ApiKey], count: int) -> None:
    for i in range(count):
        member = members[i % len(members)]
        character = CharacterFactory(
            team=team,
            name=f"Character {i:03}",
            bound_key=keys[i % len(keys)] if i % 7 else None,
            created_by=member.user,
            language_codes=["en-US", "fr-FR"] if i % 2 else ["en-US"],
            remote_changed_at=timezone.now() if i % 3 == 0 else None,
        )
        for _ in range(3):
            RevisionFactory(character=character, created_by=member.user)


def render(characters: Any) -> list[dict[str, Any]]:
    """What a list row reads: every relation the page touches."""
    return [
        {
            "name": c.name,
            "voice": c.voice_type,
            "languages": c.language_codes,
            "key": (
                f"{c.bound_key.label} (…{c.bound_key.last_four}) {c.bound_key.owner.display_name}"
                if c.bound_key
                else ""
            ),
            "created_by": c.created_by.display_name if c.created_by else "",
            "usable": c.key_usable,
            "synced": c.synced_at,
        }
        for c in characters
    ]


@pytest.fixture
def setup(make_member: Callable[..., Membership]) -> tuple[Team, list[Membership], list[ApiKey]]:
    members = [make_member(Role.EDITOR), make_member(Role.ADMIN), make_member(Role.EDITOR)]
    keys = [
        add_api_key(
            actor=m.user, label=f"Key {i}", raw_key=secrets.token_hex(16), skip_verification=True
        )
        for i, m in enumerate(members)
    ]
    revoke_api_key(actor=members[2].user, api_key_id=keys[2].pk)
    return members[0].team, members, keys


FILTERS = {
    "default": CharacterFilters(),
    "search": CharacterFilters(q="Character"),
    "language": CharacterFilters(language="fr-FR"),
    "unusable": CharacterFilters(unusable=True),
    "changed": CharacterFilters(changed=True),
    "sorted": CharacterFilters(sort="-updated"),
}


@pytest.mark.parametrize("filters", list(FILTERS))
def test_the_list_costs_the_same_for_3_and_30_characters(
    setup: tuple[Team, list[Membership], list[ApiKey]],
    django_assert_num_queries: AssertQueries,
    filters: str,
) -> None:
    team, members, keys = setup
    populate(team, members, keys, 3)
    with CaptureQueriesContext(connection) as few:
        rows_few = render(selectors.team_characters(team, FILTERS[filters]))
    assert rows_few

    populate(TeamFactory(), members, keys, 5)  # another team's rows are not counted
    populate(team, members, keys, 27)
    with django_assert_num_queries(len(few.captured_queries)):
        rows_many = render(selectors.team_characters(team, FILTERS[filters]))
    assert len(rows_many) > len(rows_few)
    assert len(few.captured_queries) == 1


def test_key_usable_is_right_for_every_row(
    setup: tuple[Team, list[Membership], list[ApiKey]],
) -> None:
    team, members, keys = setup
    populate(team, members, keys, 30)
    rows = {c.pk: c.key_usable for c in selectors.team_characters(team)}
    for character in Character.objects.filter(team=team).select_related("bound_key"):
        expected = character.bound_key is not None and character.bound_key.is_active
        assert bool(rows[character.pk]) is expected, character.name
    unusable = {c.pk for c in selectors.team_characters(team, CharacterFilters(unusable=True))}
    assert unusable == {pk for pk, usable in rows.items() if not usable}


def test_recent_revisions_cost_one_query_whatever_their_number(
    setup: tuple[Team, list[Membership], list[ApiKey]],
    django_assert_num_queries: AssertQueries,
) -> None:
    team, members, keys = setup
    character = CharacterFactory(team=team, bound_key=keys[0], created_by=members[0].user)
    for number in range(1, 31):
        RevisionFactory(character=character, number=number, created_by=members[number % 3].user)
    with django_assert_num_queries(1):
        names = [
            (r.number, r.created_by.display_name if r.created_by else "")
            for r in selectors.recent_revisions(character)
        ]
    assert [n for n, _ in names] == list(range(30, 10, -1))
