"""Team-scoped read queries for characters: a page costs a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from keys import selectors as key_selectors
from keys.models import ApiKey
from keys.selectors import keys_by_account
from teams.models import Membership, Team

from .errors import CharacterDeleted, CharacterNotFound
from .models import Character, CharacterFacets, PendingOperation, Revision

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


def key_usable() -> Q:
    """The one rule for a character's key: its bound key is not revoked and the key's owner is
    still a member of the character's team (otherwise the character is read-only until an
    Admin rebinds it). As a condition on characters, so lists annotate it and
    key_is_usable asks it of one character."""
    owner_in_team = Exists(
        Membership.objects.filter(
            team_id=OuterRef("team_id"), user_id=OuterRef("bound_key__owner_id")
        )
    )
    return Q(owner_in_team) & Q(bound_key__revoked_at__isnull=True)


def key_is_usable(character: Character) -> bool:
    """Whether the character can be acted on through its bound key (key_usable)."""
    if character.bound_key_id is None:
        return False
    return Character.objects.filter(key_usable(), pk=character.pk).exists()


def usable_keys() -> QuerySet[ApiKey]:
    """Keys that may own a new binding (a create, an import, a copy, a rebind): verified with
    Convai and not revoked."""
    return ApiKey.objects.filter(revoked_at__isnull=True, verified_at__isnull=False)


def with_key_state(queryset: QuerySet[Character]) -> QuerySet[Character]:
    return queryset.select_related("bound_key", "bound_key__owner", "created_by").annotate(
        key_usable=key_usable()
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
        queryset = queryset.annotate(key_usable=key_usable()).filter(
            Q(key_usable=False) | Q(bound_key__isnull=True)
        )
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
    """One page of the list in two cheap queries, whatever the page: the count, then the
    page's rows with their key state, chosen by a subquery over primary keys (an index scan
    in the sort order, no row bodies, stopping after the page) and reading only the columns a
    row shows (a list never needs the snapshot or the backstory, nor a key's usage figures:
    instantiating them was a third of the page)."""
    ids = _filtered(team, filters).values_list("pk", flat=True)
    paginator = (SearchPaginator if filters.q else Paginator)(ids, per_page)
    page = paginator.get_page(page_number)
    rows = (
        with_key_state(Character.objects.filter(pk__in=page.object_list))
        .only(*LIST_COLUMNS)
        .order_by(*SORTS.get(filters.sort, SORTS[DEFAULT_SORT]))
    )
    return page, list(rows)


def team_character(team: Team, character_id: int) -> Character | None:
    """One character of the team, deleted ones included (their page stays readable)."""
    return with_key_state(Character.objects.filter(team=team, pk=character_id)).first()


def recent_revisions(character: Character, limit: int = 20) -> QuerySet[Revision]:
    return character.revisions.select_related("created_by").order_by("-number")[:limit]


# How long a team's stored filter options are trusted without a write dropping them
# (models.CharacterFacets): the bound on a race or a write that bypassed Character.save().
FACETS_MAX_AGE = timedelta(minutes=10)


def facet_values(team: Team) -> dict[str, list[Any]]:
    """The voices, languages and keys in use, for the list's filters: the team's stored
    CharacterFacets (one query), computed again when a write dropped them or they are older
    than FACETS_MAX_AGE."""
    return _facets_of(CharacterFacets.objects.filter(team=team).first(), team)


def _facets_of(stored: CharacterFacets | None, team: Team) -> dict[str, list[Any]]:
    if stored is None or stored.computed_at < timezone.now() - FACETS_MAX_AGE:
        stored = compute_facets(team)
    return {"voices": stored.voices, "languages": stored.languages, "keys": stored.keys}


@dataclass(frozen=True)
class ListPageState:
    """What the full list page shows besides its rows."""

    facets: dict[str, list[Any]]  # facet_values
    has_usable_key: bool  # the member may create or import (usable_keys_for)
    has_pending_operations: bool  # the "Not finished yet" banner has rows (pending_operations)


def list_page_state(team: Team, user: User) -> ListPageState:
    """The list page's filter options, whether `user` has a usable key and whether the team
    has unfinished operations, in one query: the stored facets' row with the two answers as
    EXISTS (three round trips were a tenth of the page on PostgreSQL). Without a stored row,
    or with a stale one, the facets are computed again and the two answers asked apart."""
    pending = PendingOperation.objects.filter(team=team, state=PendingOperation.State.PENDING)
    stored = (
        CharacterFacets.objects.filter(team=team)
        .annotate(has_usable_key=Exists(usable_keys_for(user)), has_pending=Exists(pending))
        .first()
    )
    if stored is None:
        return ListPageState(
            facets=_facets_of(None, team),
            has_usable_key=usable_keys_for(user).exists(),
            has_pending_operations=pending.exists(),
        )
    return ListPageState(
        facets=_facets_of(stored, team),
        has_usable_key=stored.has_usable_key,
        has_pending_operations=stored.has_pending,
    )


def compute_facets(team: Team) -> CharacterFacets:
    """Read the team's facets from its live characters and store them."""
    computed_at = timezone.now()  # before reading: a write during the scans makes it older
    facets, _ = CharacterFacets.objects.update_or_create(
        team=team, defaults={**read_facets(team), "computed_at": computed_at}
    )
    return facets


def read_facets(team: Team) -> dict[str, list[Any]]:
    """The voices and languages of the team's live characters, and the keys they are bound
    to as [ID, label, last four, owner's username], sorted (three index scans:
    `character_live_voice`, `character_live_languages`, and the keys' EXISTS)."""
    live = Character.objects.filter(team=team, deleted_at__isnull=True).order_by()
    voices = sorted(v for v in live.values_list("voice_type", flat=True).distinct() if v)
    languages: set[str] = set()
    for codes in live.values_list("language_codes", flat=True).distinct():
        languages.update(codes or [])
    keys = team_bound_keys(team).values_list("pk", "label", "last_four", "owner__username")
    return {
        "voices": voices,
        "languages": sorted(languages),
        "keys": [[str(pk), label, last_four, owner] for pk, label, last_four, owner in keys],
    }


def team_bound_keys(team: Team) -> QuerySet[ApiKey]:
    """The keys the team's live characters are bound to (the list's key filter)."""
    bound = Character.objects.filter(team=team, deleted_at__isnull=True, bound_key=OuterRef("pk"))
    return ApiKey.objects.filter(Exists(bound)).order_by("label", "pk")


def usable_keys_for(user: User) -> QuerySet[ApiKey]:
    """The actor's own keys that may own a new or imported character."""
    return usable_keys().filter(owner=user).order_by("label")


def changed_characters(team: Team) -> QuerySet[Character]:
    """The team's live characters marked changed in Convai, most recently changed first."""
    return Character.objects.filter(
        team=team, deleted_at__isnull=True, remote_changed_at__isnull=False
    ).order_by(F("remote_changed_at").desc(), "-pk")


def copy_targets(actor: Membership, character: Character) -> list[ApiKey]:
    """The member's verified keys a character may be copied to (not the key it is bound to)."""
    return [k for k in usable_keys_for(actor.user) if k.pk != character.bound_key_id]


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


def save_claim_expired_before() -> datetime:
    """Claims older than this were interrupted (the server died mid-save): a save may take
    them over, so a character is never locked for good (CHARACTER_SAVE_CLAIM_SECONDS: the
    client's longest write plus read-back, with a margin)."""
    return timezone.now() - timedelta(seconds=settings.CHARACTER_SAVE_CLAIM_SECONDS)


def operation_overdue_before() -> datetime:
    """Pending operations started before this have outlived any request (the client's longest
    calls): their request is over, whatever happened to it."""
    return timezone.now() - timedelta(seconds=settings.CONVAI_REQUEST_SECONDS)


def character_for(actor: Membership, character_id: int, *, live: bool = True) -> Character:
    """The actor's team's character (CharacterNotFound otherwise: another team's is invisible);
    a deleted one only with `live=False`."""
    character = (
        Character.objects.select_related("bound_key", "bound_key__owner", "created_by")
        .filter(team=actor.team, pk=character_id)
        .first()
    )
    if character is None:
        raise CharacterNotFound()
    if live and character.is_deleted:
        raise CharacterDeleted()
    return character


def rebind_candidates(team_id: int, current: ApiKey | None = None) -> list[ApiKey]:
    """Verified, active keys of the team's current members; with `current` (the bound key),
    those of its Convai account first (keys.selectors.keys_by_account)."""
    members = Membership.objects.filter(team_id=team_id).values("user_id")
    candidates = (
        usable_keys()
        .filter(owner_id__in=members)
        .select_related("owner")
        .order_by("owner__username", "label")
    )
    return keys_by_account(candidates, current)


def pending_operations(team: Team) -> list[PendingOperation]:
    """The team's operations still pending, oldest first, each marked `overdue` when its
    request must be over (shown "Outcome unknown: check Convai") and `stuck` when no key can
    ask Convai about it any more (operation_key)."""
    overdue_before = operation_overdue_before()
    operations = list(
        PendingOperation.objects.filter(team=team, state=PendingOperation.State.PENDING)
        .select_related("actor", "character", "api_key")
        .order_by("created_at", "pk")[:20]
    )
    for operation in operations:
        operation.overdue = operation.created_at <= overdue_before  # type: ignore[attr-defined]
        operation.stuck = operation.overdue and operation_key(operation) is None  # type: ignore[attr-defined]
    return operations


def operation_key(operation: PendingOperation) -> ApiKey | None:
    """The key to ask Convai through about a create, clone or delete whose outcome is not
    known: its own while that key is active; once it is revoked, an active, verified key of
    the same Convai account held by a current member of the team (Convai answers the same for
    every key of an account). None when there is neither: nothing can ask Convai (a deleted
    key's account is not known)."""
    own = operation.api_key
    if own is None or own.is_active:
        return own
    return next(
        (
            key
            for key in rebind_candidates(operation.team_id, own)
            if key_selectors.same_account(key, own)
        ),
        None,
    )


def quota_of(api_key: ApiKey) -> tuple[int | None, datetime | None]:
    """The key's account's core-API calls left as last read (keys.selectors), if known."""
    remaining = getattr(key_selectors, "core_api_remaining", None)
    if remaining is None:
        return None, None
    return remaining(api_key), getattr(api_key, "usage_checked_at", None)


@dataclass(frozen=True)
class SyncKey:
    """One key a sync reads through: how many characters, and its account's quota left."""

    api_key: ApiKey | None
    characters: int
    usable: bool
    quota_remaining: int | None = None
    quota_checked_at: datetime | None = None


def sync_plan(team: Team) -> list[SyncKey]:
    """What a sync of every character will read, per bound key (one `get` per character)."""
    counts: dict[Any, int] = {}
    usable: dict[Any, bool] = {}
    columns = ("bound_key_id", "key_usable")  # key_usable: with_key_state's annotation
    live = with_key_state(Character.objects.filter(team=team, deleted_at__isnull=True))
    for key_id, key_usable in live.order_by().values_list(*columns):
        counts[key_id] = counts.get(key_id, 0) + 1
        usable[key_id] = bool(key_usable) and key_id is not None
    keys = ApiKey.objects.in_bulk([k for k in counts if k is not None])
    rows = []
    for key_id, number in counts.items():
        api_key = keys.get(key_id)
        remaining, checked_at = quota_of(api_key) if api_key is not None else (None, None)
        rows.append(SyncKey(api_key, number, usable[key_id], remaining, checked_at))
    rows.sort(key=lambda row: (not row.usable, row.api_key.label if row.api_key else ""))
    return rows
