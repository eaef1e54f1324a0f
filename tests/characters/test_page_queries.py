"""The list and detail pages cost a constant number of queries, whatever the number of
characters, revisions and members (no query per row, per revision or per key)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from characters.models import CharacterFacets, PendingOperation
from keys.models import ApiKey
from teams.models import Membership, Role
from tests.factories import CharacterFactory, MembershipFactory, RevisionFactory

pytestmark = pytest.mark.django_db

# With the cache cold too (nothing of the list is cached): the session, the user, the
# membership and the page's chrome; the count and the page's rows; and on the full page only,
# the stored filter options with "has a usable key" and "has unfinished operations" (one
# query: selectors.list_page_state; the operations themselves only when there are some).
LIST_QUERIES = 7
LIST_QUERIES_HTMX = 6


def _fill(membership: Membership, characters: int, revisions: int) -> int:
    """`characters` characters bound to keys of different members, each with `revisions`
    revisions; returns the first character's pk."""
    first = 0
    for n in range(characters):
        owner = MembershipFactory.create(team=membership.team, role=Role.EDITOR).user
        key = ApiKey.objects.create(owner=owner, label=f"Key {n}", last_four=f"{n:04d}")
        character = CharacterFactory.create(team=membership.team, bound_key=key, created_by=owner)
        for number in range(1, revisions + 1):
            RevisionFactory.create(character=character, number=number)
        first = first or character.pk
    return first


def _queries(client: Client, url: str) -> int:
    client.get(url)  # the first request of a session also writes it; count a second view
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("htmx", [False, True])
def test_the_list_costs_the_same_for_3_or_40_characters(
    client: Client, make_member: Callable[..., Membership], htmx: bool
) -> None:
    few = make_member(Role.ADMIN)
    many = MembershipFactory.create(role=Role.ADMIN)  # another team
    _fill(few, 3, 1)
    _fill(many, 40, 1)
    headers = {"HX-Request": "true"} if htmx else {}
    counts = []
    for member in (few, many):
        client.force_login(member.user)
        url = reverse("characters:character-list", kwargs={"team_slug": member.team.slug})
        client.get(url, headers=headers)  # the session's first write and the stored facets
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url, headers=headers).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts
    assert counts[0] == (LIST_QUERIES_HTMX if htmx else LIST_QUERIES), counts


def test_the_detail_page_costs_the_same_for_1_or_30_revisions(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    member = make_member(Role.ADMIN)
    client.force_login(member.user)
    one = _fill(member, 1, 1)
    many = _fill(member, 1, 30)
    counts = [
        _queries(
            client,
            reverse(
                "characters:character-detail",
                kwargs={"team_slug": member.team.slug, "character_id": pk},
            ),
        )
        for pk in (one, many)
    ]
    assert counts[0] == counts[1], counts


def test_the_banner_and_the_create_button_come_with_the_stored_facets(
    client: Client, make_member: Callable[..., Membership]
) -> None:
    """ "Has a usable key" and "has unfinished operations" are read with the stored filter
    options (selectors.list_page_state); the operations themselves cost one query more, only
    when there are some. Without stored options (the first list after a change) the answers
    are the same."""
    member = make_member(Role.EDITOR)
    _fill(member, 2, 1)
    client.force_login(member.user)
    url = reverse("characters:character-list", kwargs={"team_slug": member.team.slug})
    client.get(url)  # the session's first write and the stored facets
    create = reverse("characters:character-create", kwargs={"team_slug": member.team.slug})
    html = client.get(url).content.decode()
    assert "Not finished yet" not in html and f'href="{create}"' not in html

    ApiKey.objects.create(
        owner=member.user, label="Mine", last_four="9z9z", verified_at=timezone.now()
    )
    PendingOperation.objects.create(
        team=member.team, kind="create", token="t1", actor=member.user, name="Half-made Hal"
    )
    with CaptureQueriesContext(connection) as captured:
        html = client.get(url).content.decode()
    assert len(captured.captured_queries) == LIST_QUERIES + 1
    assert "Not finished yet" in html and "Half-made Hal" in html and f'href="{create}"' in html

    CharacterFacets.objects.filter(team=member.team).delete()
    html = client.get(url).content.decode()
    assert "Not finished yet" in html and "Half-made Hal" in html and f'href="{create}"' in html
