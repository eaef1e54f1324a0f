"""Every read of builds: a team's builds, one build, the keys a build may mint with, the
endpoint's lookup, the chart's figures, and the builds a key or a member takes with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey
from teams.models import Membership, Team

from . import limits
from .models import Build

CHART_HOURS = 24


def team_keys(team: Team) -> QuerySet[ApiKey]:
    """Keys a build of the team may mint with: usable (keys' one rule: verified, not revoked)
    and owned by a current member of the team, as a character's bound key must be."""
    return (
        ApiKey.objects.usable()
        .filter(Exists(Membership.objects.filter(team=team, user_id=OuterRef("owner_id"))))
        .select_related("owner")
        .order_by("label", "created_at")
    )


def key_usable() -> Q:
    """A build's key can mint: it exists, is usable, and its owner is still in the build's
    team. As a condition on builds, so lists annotate it."""
    owner_in_team = Exists(
        Membership.objects.filter(
            team_id=OuterRef("team_id"), user_id=OuterRef("api_key__owner_id")
        )
    )
    return (
        Q(owner_in_team)
        & Q(api_key__revoked_at__isnull=True)
        & Q(api_key__verified_at__isnull=False)
    )


def _with_key_state(builds: QuerySet[Build]) -> QuerySet[Build]:
    return builds.select_related("api_key", "api_key__owner", "created_by").annotate(
        key_usable=key_usable()
    )


def team_builds(team: Team) -> QuerySet[Build]:
    """The team's builds, live ones first, with whether their key still mints."""
    return _with_key_state(Build.objects.filter(team=team)).order_by(
        "revoked_at", "name", "created_at"
    )


def team_build(team: Team, build_id: UUID | str) -> Build | None:
    try:
        return _with_key_state(Build.objects.filter(team=team)).filter(pk=build_id).first()
    except ValueError:
        return None


def build_for_endpoint(build_id: UUID) -> Build | None:
    """The token endpoint's one read: the build, its team and key, and the key's state."""
    return (
        Build.objects.select_related("team", "api_key")
        .annotate(key_usable=key_usable())
        .filter(pk=build_id)
        .first()
    )


@dataclass(frozen=True)
class Bar:
    start: datetime
    count: int
    height: int  # percent of the tallest bar


def mints_per_hour(build: Build, *, now: datetime | None = None) -> list[Bar]:
    """The last day's tokens per hour, oldest first (one query)."""
    hours = limits.hourly(f"build:{build.pk}:hour", hours=CHART_HOURS, now=now)
    top = max((count for _start, count in hours), default=0)
    return [
        Bar(start=start, count=count, height=round(100 * count / top) if top else 0)
        for start, count in hours
    ]


def builds_losing_key(
    *, team: Team | None = None, owner: User | None = None, api_key: ApiKey | None = None
) -> int:
    """Live builds that stop minting when `api_key` is revoked, or when `owner` leaves
    `team` (their keys no longer serve it)."""
    builds = Build.objects.live()
    if api_key is not None:
        builds = builds.filter(api_key=api_key)
    if team is not None:
        builds = builds.filter(team=team)
    if owner is not None:
        builds = builds.filter(api_key__owner=owner)
    return builds.count()


def stopped_builds_by_key(user: User) -> dict[UUID, list[Build]]:
    """The user's keys that live builds are bound to but can no longer mint with (the key was
    revoked, or its owner left the build's team), with those builds: one query, for the key
    page's warnings."""
    stopped: dict[UUID, list[Build]] = {}
    builds = (
        Build.objects.live()
        .filter(api_key__owner=user)
        .annotate(key_usable=key_usable())
        .filter(key_usable=False)
        .select_related("team", "api_key")
        .annotate(
            owner_in_team=Exists(
                Membership.objects.filter(team_id=OuterRef("team_id"), user_id=user.pk)
            )
        )
        .order_by("team__name", "name")
    )
    for build in builds:
        if build.api_key_id is not None:
            stopped.setdefault(build.api_key_id, []).append(build)
    return stopped


def is_expired(build: Build, *, now: datetime | None = None) -> bool:
    return build.expires_at is not None and build.expires_at <= (now or timezone.now())
