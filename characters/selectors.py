"""Team-scoped read queries for characters: a page costs a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast
from uuid import UUID

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
from keys.models import ApiKey
from teams.models import Membership, Team

from .models import Character, Revision

SORTS: dict[str, tuple[str, ...]] = {
    "name": ("sort_name", "pk"),  # natural order: "NPC 2" before "NPC 10"
    "-name": ("-sort_name", "-pk"),
    "updated": ("updated_at", "pk"),
    "-updated": ("-updated_at", "-pk"),
    "synced": ("synced_at", "pk"),
    "-synced": ("-synced_at", "-pk"),
    "created": ("created_at", "pk"),
    "-created": ("-created_at", "-pk"),
}
DEFAULT_SORT = "name"


def _usable() -> Exists:
    """The bound key is active and its owner is a member of the character's team."""
    return Exists(
        Membership.objects.filter(
            team_id=OuterRef("team_id"), user_id=OuterRef("bound_key__owner_id")
        )
    )


def with_key_state(queryset: QuerySet[Character]) -> QuerySet[Character]:
    return queryset.select_related("bound_key", "bound_key__owner", "created_by").annotate(
        key_usable=_usable() & Q(bound_key__revoked_at__isnull=True)
    )


@dataclass(frozen=True)
class CharacterFilters:
    q: str = ""
    voice: str = ""
    language: str = ""
    key: str = ""
    unusable: bool = False
    changed: bool = False
    sort: str = DEFAULT_SORT


def _filtered(team: Team, filters: CharacterFilters) -> QuerySet[Character]:
    queryset = Character.objects.filter(team=team, deleted_at__isnull=True)
    if filters.q:
        queryset = queryset.filter(
            Q(name__search_contains=filters.q) | Q(backstory__search_contains=filters.q)
        )
    if filters.voice:
        queryset = queryset.filter(voice_type=filters.voice)
    if filters.language:
        # JSON list membership, portable across SQLite and PostgreSQL: the quoted code.
        queryset = queryset.filter(language_codes__icontains=f'"{filters.language}"')
    if filters.key:
        try:
            queryset = queryset.filter(bound_key_id=UUID(filters.key))
        except ValueError:
            queryset = queryset.none()  # a mangled key ID in a shared URL matches nothing
    if filters.changed:
        queryset = queryset.filter(remote_changed_at__isnull=False)
    if filters.unusable:
        queryset = queryset.annotate(
            key_usable=_usable() & Q(bound_key__revoked_at__isnull=True)
        ).filter(Q(key_usable=False) | Q(bound_key__isnull=True))
    return queryset.order_by(*SORTS.get(filters.sort, SORTS[DEFAULT_SORT]))


def team_characters(team: Team, filters: CharacterFilters | None = None) -> QuerySet[Character]:
    """The team's live characters, filtered and sorted, with their key state."""
    return with_key_state(_filtered(team, filters or CharacterFilters()))


SEARCH_COUNT_CAP = 1000


class SearchPaginator(Paginator):
    """A search counts its matches up to SEARCH_COUNT_CAP (+1, to know there are more): an
    exact count of a word in half of 10,000 backstories reads every one of them, for a number
    nobody pages through. Like GitHub's "1,000+ results"; filters keep exact counts."""

    @cached_property
    def count(self) -> int:
        matches = cast("QuerySet[Character]", self.object_list)
        return matches.order_by()[: SEARCH_COUNT_CAP + 1].count()  # no sort to count

    @property
    def capped(self) -> bool:
        return self.count > SEARCH_COUNT_CAP


LIST_COLUMNS = (
    "team_id",
    "name",
    "voice_type",
    "language_codes",
    "pending_language_codes",
    "synced_at",
    "remote_changed_at",
    "remote_missing_at",
    "deleted_at",
    "created_by__username",
    "created_by__first_name",
    "created_by__last_name",
    "bound_key__label",
    "bound_key__last_four",
    "bound_key__revoked_at",
    "bound_key__owner__username",
    "bound_key__owner__first_name",
    "bound_key__owner__last_name",
)


def character_page(
    team: Team, filters: CharacterFilters, page_number: str | int | None, per_page: int = 50
) -> tuple[Page[int], list[Character]]:
    """One page of the list in three cheap queries, whatever the page: count, the page's
    primary keys (an index scan in the sort order, no row bodies), then those rows with
    their key state, reading only the columns a row shows (a list never needs the snapshot
    or the backstory, nor a key's usage figures: instantiating them was a third of the page)."""
    ids = _filtered(team, filters).values_list("pk", flat=True)
    paginator = (SearchPaginator if filters.q else Paginator)(ids, per_page)
    page = paginator.get_page(page_number)
    wanted = list(page.object_list)
    rows = with_key_state(Character.objects.filter(pk__in=wanted)).only(*LIST_COLUMNS)
    by_pk = {character.pk: character for character in rows}
    return page, [by_pk[pk] for pk in wanted if pk in by_pk]


def team_character(team: Team, character_id: int) -> Character | None:
    """One character of the team, deleted ones included (their page stays readable)."""
    return with_key_state(Character.objects.filter(team=team, pk=character_id)).first()


def recent_revisions(character: Character, limit: int = 20) -> QuerySet[Revision]:
    return character.revisions.select_related("created_by").order_by("-number")[:limit]


def facets_cache_key(team_id: int) -> str:
    return f"characters:facets:{team_id}"


def facet_values(team: Team) -> dict[str, list[Any]]:
    """The voices, languages and keys in use, for the list's filters. Cached per team for a
    minute (services drop it when they change a character; another process may show the
    options a minute late, which filters nothing wrongly: a value in the URL still works)."""
    key = facets_cache_key(team.pk)
    cached: dict[str, list[Any]] | None = cache.get(key)
    if cached is not None:
        return cached
    live = Character.objects.filter(team=team, deleted_at__isnull=True)
    voices = sorted(v for v in live.values_list("voice_type", flat=True).distinct() if v)
    languages: set[str] = set()
    for codes in live.values_list("language_codes", flat=True).distinct():
        languages.update(codes or [])
    keys = [
        (str(pk), label, last_four, owner)
        for pk, label, last_four, owner in team_bound_keys(team).values_list(
            "pk", "label", "last_four", "owner__username"
        )
    ]
    facets: dict[str, list[Any]] = {"voices": voices, "languages": sorted(languages), "keys": keys}
    cache.set(key, facets, 60)
    return facets


def team_bound_keys(team: Team) -> QuerySet[ApiKey]:
    """The keys the team's live characters are bound to (the list's key filter)."""
    bound = Character.objects.filter(team=team, deleted_at__isnull=True, bound_key=OuterRef("pk"))
    return ApiKey.objects.filter(Exists(bound)).select_related("owner").order_by("label")


def usable_keys_for(user: User) -> QuerySet[ApiKey]:
    """The actor's own keys that may own a new or imported character."""
    return ApiKey.objects.filter(
        owner=user, revoked_at__isnull=True, verified_at__isnull=False
    ).order_by("label")


def characters_losing_key(
    *, team: Team | None = None, owner: User | None = None, api_key: ApiKey | None = None
) -> int:
    """How many live characters become read-only if this key goes (or this owner leaves
    `team`): what the key and member dialogs warn about."""
    queryset = Character.objects.filter(deleted_at__isnull=True)
    if api_key is not None:
        queryset = queryset.filter(bound_key=api_key)
    if owner is not None:
        queryset = queryset.filter(bound_key__owner=owner)
    if team is not None:
        queryset = queryset.filter(team=team)
    return queryset.count()
