"""Every test that uses the database checks, at its end, that each team's stored filter
options (characters.models.CharacterFacets) are what its characters say: every writer in the
suite, services, jobs, bundles, drift, factories, keeps them right or drops them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import uses_database


@pytest.fixture(autouse=True)
def _stored_facets_match_the_characters(request: pytest.FixtureRequest) -> Iterator[None]:
    if not uses_database(request):
        yield
        return
    request.getfixturevalue("db")  # torn down after this check (its rollback or flush)
    yield
    from characters.models import CharacterFacets
    from characters.selectors import read_facets

    for stored in CharacterFacets.objects.select_related("team"):
        kept = {"voices": stored.voices, "languages": stored.languages, "keys": stored.keys}
        assert kept == read_facets(stored.team), f"stale facets of team {stored.team.slug}"
