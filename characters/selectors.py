"""Team-scoped read queries for characters: a page costs a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
from keys.models import ApiKey
from teams.models import Membership, Team

from .models import Character, Revision

SORTS: dict[str, tuple[str, ...]] = {
    "name": ("name", "pk"),
    "-name": ("-name", "-pk"),
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
    sort: str = DEFAULT_SORT


def team_characters(team: Team, filters: CharacterFilters | None = None) -> QuerySet[Character]:
    """The team's live characters, filtered and sorted."""
    filters = filters or CharacterFilters()
    queryset = with_key_state(Character.objects.filter(team=team, deleted_at__isnull=True))
    if filters.q:
        queryset = queryset.filter(Q(name__icontains=filters.q) | Q(backstory__icontains=filters.q))
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
    if filters.unusable:
        queryset = queryset.filter(Q(key_usable=False) | Q(bound_key__isnull=True))
    return queryset.order_by(*SORTS.get(filters.sort, SORTS[DEFAULT_SORT]))


def team_character(team: Team, character_id: int) -> Character | None:
    """One character of the team, deleted ones included (their page stays readable)."""
    return with_key_state(Character.objects.filter(team=team, pk=character_id)).first()


def recent_revisions(character: Character, limit: int = 20) -> QuerySet[Revision]:
    return character.revisions.select_related("created_by").order_by("-number")[:limit]


def facet_values(team: Team) -> dict[str, list[str]]:
    """The voices and languages in use, for the list's filters (two small queries)."""
    live = Character.objects.filter(team=team, deleted_at__isnull=True)
    voices = sorted(v for v in live.values_list("voice_type", flat=True).distinct() if v)
    languages: set[str] = set()
    for codes in live.values_list("language_codes", flat=True).distinct():
        languages.update(codes or [])
    return {"voices": voices, "languages": sorted(languages)}


def team_bound_keys(team: Team) -> QuerySet[ApiKey]:
    """The keys the team's live characters are bound to (the list's key filter)."""
    return (
        ApiKey.objects.filter(characters__team=team, characters__deleted_at__isnull=True)
        .select_related("owner")
        .distinct()
        .order_by("label")
    )


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
