"""Every read of builds: a team's builds, one build, the keys a build may mint with, the
endpoint's lookup, the chart's figures, and the builds a key or a member takes with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.db.models.sql.compiler import SQLCompiler
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


def _endpoint_builds() -> QuerySet[Build]:
    return Build.objects.select_related("team", "api_key").annotate(key_usable=key_usable())


@dataclass(frozen=True)
class _Compiled:
    """A query compiled once for one database: its SQL, its parameters, where the build ID
    goes among them, and the compiler that turns rows into models (with converters)."""

    sql: str
    params: tuple[Any, ...]
    id_at: int
    compiler: SQLCompiler


_SENTINEL = UUID(int=0)
# Per connection, so per thread: the compiler holds the connection it was compiled for.
_compiled: WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = WeakKeyDictionary()


def _compile_endpoint_read(alias: str) -> _Compiled:
    """Compile the endpoint's read with a placeholder ID. Compiling the ORM query (the joins
    and the key-usable subquery) costs more than running it, and the token endpoint runs it
    for every token; its rule stays in one place, key_usable()."""
    connection = connections[alias]
    compiler = _endpoint_builds().filter(pk=_SENTINEL).order_by().query.get_compiler(alias)
    sql, params = compiler.as_sql()
    placeholder = Build._meta.pk.get_db_prep_value(_SENTINEL, connection)
    if list(params).count(placeholder) != 1:
        raise ImproperlyConfigured("The token endpoint's read must name the build once.")
    return _Compiled(sql, tuple(params), list(params).index(placeholder), compiler)


def build_for_endpoint(build_id: UUID) -> Build | None:
    """The token endpoint's one read: the build, its team and key, and the key's state (as
    `key_usable`). The same query as `_endpoint_builds().filter(pk=build_id).first()`, run
    from SQL compiled once per database connection (a test holds the two equal)."""
    alias = router.db_for_read(Build)
    connection = connections[alias]
    compiled = _compiled.get(connection)
    if compiled is None:
        compiled = _compiled[connection] = _compile_endpoint_read(alias)
    params: list[Any] = list(compiled.params)
    params[compiled.id_at] = Build._meta.pk.get_db_prep_value(build_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, params)
        rows = cursor.fetchmany(2)
    compiler = compiled.compiler
    for row in compiler.results_iter([rows]):
        return _build_from_row(compiler, alias, row)
    return None


def _build_from_row(compiler: SQLCompiler, alias: str, row: Sequence[object]) -> Build:
    """What Django's ModelIterable makes of one row: the build, its select_related team and
    key, and the annotation."""
    klass_info = compiler.klass_info
    assert klass_info is not None
    fields = klass_info["select_fields"]
    start, end = fields[0], fields[-1] + 1
    names = [column[0].target.attname for column in compiler.select[start:end]]
    build = Build.from_db(alias, names, row[start:end])
    for populator in get_related_populators(klass_info, compiler.select, alias):
        populator.populate(row, build)
    for name, position in compiler.annotation_col_map.items():
        setattr(build, name, row[position])
    return build


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
