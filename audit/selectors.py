"""Reading a team's audit log: filters, the search box's qualifiers, and keyset pages.

Pages are cut by id (the chain's order), never by OFFSET, and nothing counts the table: the
first page of a million events costs what the first page of ten does. Date bounds become id
bounds (created_at rises with id inside a team's chain, see services.record), so every filter
reads one of the indexes in models.AuditEvent.Meta newest first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from .models import AuditChain, AuditEvent, Outcome

PAGE_SIZE = 50
NO_ID = 2**62  # an id bound past every id (for a bound whose subquery finds no row)

TARGET_TYPES = {
    "character": "Character",
    "membership": "Member",
    "invitation": "Invitation",
    "api_key": "API key",
    "team": "Team",
    "job": "Job",
    "page": "Page",
    "audit": "Audit log",
}
QUALIFIERS = ("actor", "action", "outcome", "target", "created", "id")
_TOKEN = re.compile(r'(\w+):("[^"]*"|\S+)|"([^"]*)"|(\S+)')
_DATE_OP = re.compile(r"^(>=|<=|>|<|=)?(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?$")


@dataclass
class Criteria:
    """What to show, from the filter fields and the search box's qualifiers together."""

    actor_ids: list[int] = field(default_factory=list)
    # A member (user ID): the events they performed and the events about them (their
    # membership of this team, their account).
    member_id: int | None = None
    member_memberships: list[int] = field(default_factory=list)  # theirs in this team
    actor_names: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    action_prefixes: list[str] = field(default_factory=list)
    outcome: str = ""
    target_type: str = ""
    target_id: str = ""
    since: date | None = None  # inclusive
    until: date | None = None  # inclusive
    text: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(
            (
                self.actor_ids,
                self.member_id is not None,
                self.actor_names,
                self.actions,
                self.action_prefixes,
                self.outcome,
                self.target_type,
                self.target_id,
                self.since,
                self.until,
                self.text,
            )
        )


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_search(q: str, criteria: Criteria) -> Criteria:
    """GitHub-style: `actor:alice action:character.delete outcome:failure created:>=2026-11-01
    target:character` plus plain words over target names. Unknown qualifiers are plain text."""
    for match in _TOKEN.finditer(q or ""):
        name, value, quoted, word = match.groups()
        if name is not None:
            value = value.strip('"')
            name = name.lower()
            if name == "actor":
                criteria.actor_names.append(value)
            elif name == "action":
                if value.endswith((".*", ".")) or "." not in value:
                    criteria.action_prefixes.append(value.rstrip("*").rstrip(".") + ".")
                else:
                    criteria.actions.append(value)
            elif name == "outcome":
                if value.lower() in Outcome.values:
                    criteria.outcome = value.lower()
                else:
                    criteria.errors.append(f"Unknown outcome {value!r}.")
            elif name == "target":
                kind, _, ident = value.partition(":")
                criteria.target_type = kind
                criteria.target_id = ident or criteria.target_id
            elif name == "created":
                _apply_created(value, criteria)
            else:
                criteria.text.append(f"{name}:{value}")
        else:
            criteria.text.append(quoted if quoted is not None else word)
    return criteria


def _apply_created(value: str, criteria: Criteria) -> None:
    match = _DATE_OP.match(value)
    first = _parse_date(match.group(2)) if match else None
    second = _parse_date(match.group(3)) if match and match.group(3) else None
    if match is None or first is None or (match.group(3) and second is None):
        criteria.errors.append(f"created:{value} is not a date (YYYY-MM-DD, >=, <, or a..b).")
        return
    op = match.group(1) or "="
    since, until = criteria.since, criteria.until
    try:
        if second is not None:
            since, until = first, second
        elif op == ">=":
            since = first
        elif op == ">":
            since = first + timedelta(days=1)
        elif op == "<=":
            until = first
        elif op == "<":
            until = first - timedelta(days=1)
        else:
            since = until = first
    except OverflowError:
        since = until = date.max  # flagged just below
    if not in_range(since) or not in_range(until):
        criteria.errors.append(out_of_range(f"created:{value}"))
        return
    criteria.since, criteria.until = since, until


# An "until" day is read up to the next day's midnight, which must exist.
FIRST_DAY, LAST_DAY = date.min, date.max - timedelta(days=1)
# Row and user ids are 64-bit signed integers on every supported database.
MAX_ID = 2**63 - 1


def in_range(day: date | None) -> bool:
    return day is None or FIRST_DAY <= day <= LAST_DAY


def out_of_range(what: str, *, number: bool = False) -> str:
    """The warning for a date or number no filter can use (same voice as the other warnings)."""
    if number:
        return f"{what} is out of range: no ID is that large. Check the link or pick from the list."
    return f"{what} is out of range: use dates from {FIRST_DAY} to {LAST_DAY}."


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _first_id_from(team_id: int, moment: datetime) -> Coalesce:
    """The id of the team's first event at or after `moment` (NO_ID if none), as SQL."""
    first = (
        AuditEvent.objects.filter(team_id=team_id, created_at__gte=moment)
        .order_by("created_at")
        .values("id")[:1]
    )
    return Coalesce(Subquery(first), NO_ID)


def id_bound_before(team_id: int, day: date) -> int:
    """The id of the team's first event on or after `day` (NO_ID if none): every event of the
    team before that day has a smaller id."""
    first = (
        AuditEvent.objects.filter(team_id=team_id, created_at__gte=_midnight(day))
        .order_by("created_at")
        .values_list("id", flat=True)
        .first()
    )
    return NO_ID if first is None else first


def events_matching(team_id: int, criteria: Criteria) -> QuerySet[AuditEvent]:
    """The team's events that match, newest first (one query when evaluated)."""
    events = AuditEvent.objects.filter(team_id=team_id)
    if criteria.member_id is not None:
        events = events.filter(_by_or_about(criteria.member_id, criteria.member_memberships))
    if criteria.actor_ids:
        events = events.filter(actor_id__in=criteria.actor_ids)
    if criteria.actor_names:
        users = get_user_model()._default_manager
        by_name = Q()
        for name in criteria.actor_names:
            by_name |= Q(username__iexact=name)
        events = events.filter(
            Q(actor_id__in=users.filter(by_name).values("pk"))
            | Q(actor_label__in=criteria.actor_names)
        )
    if criteria.actions or criteria.action_prefixes:
        which = Q(action__in=criteria.actions) if criteria.actions else Q()
        for prefix in criteria.action_prefixes:
            which |= Q(action__startswith=prefix)
        events = events.filter(which)
    if criteria.outcome:
        events = events.filter(outcome=criteria.outcome)
    if criteria.target_type:
        events = events.filter(target_type=criteria.target_type)
    if criteria.target_id:
        events = events.filter(target_id=criteria.target_id)
    if criteria.since is not None:
        events = events.filter(id__gte=_first_id_from(team_id, _midnight(criteria.since)))
    if criteria.until is not None:
        upper = _midnight(criteria.until + timedelta(days=1))
        events = events.filter(id__lt=_first_id_from(team_id, upper))
    for word in criteria.text:
        events = events.filter(target_label__icontains=word)
    return events.order_by("-id")


def _by_or_about(user_id: int, memberships: list[int]) -> Q:
    """Events by the user, about their account, or about their membership of the team (the
    membership's ID is what member events name; a removed membership's row is gone, so events
    about an earlier membership of a returning member match by the account only)."""
    return (
        Q(actor_id=user_id)
        | Q(target_type="user", target_id=str(user_id))
        | Q(target_type="membership", target_id__in=[str(pk) for pk in memberships])
    )


@dataclass
class Page:
    events: list[AuditEvent]
    newer_than: int | None  # cursor for the previous (newer) page, if any
    older_than: int | None  # cursor for the next (older) page, if any
    at_newest: bool


def page_of(events: QuerySet[AuditEvent], *, after: int | None, before: int | None) -> Page:
    """`after=N`: the page of events older than id N; `before=N`: newer than N (a page back).
    One query: PAGE_SIZE + 1 rows tell whether there is more."""
    if before is not None:
        rows = list(events.filter(id__gt=before).order_by("id")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        return Page(
            rows,
            newer_than=rows[0].pk if rows and more_newer else None,
            older_than=rows[-1].pk if rows else None,
            at_newest=not more_newer,
        )
    if after is not None:
        events = events.filter(id__lt=after)
    rows = list(events[: PAGE_SIZE + 1])
    more_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(
        rows,
        newer_than=rows[0].pk if rows and after is not None else None,
        older_than=rows[-1].pk if rows and more_older else None,
        at_newest=after is None,
    )


def team_event(team_id: int, event_id: int) -> AuditEvent | None:
    """One event of the team's log, or None (another team's event does not exist here)."""
    return AuditEvent.objects.filter(team_id=team_id, pk=event_id).first()


def last_verification(team_id: int) -> AuditEvent | None:
    """The team's last Verify (its own event: when, who, the result), shown beside the button
    so nobody needs to re-run a long check to see where the log stood."""
    return (
        AuditEvent.objects.filter(team_id=team_id, action="audit.verified").order_by("-id").first()
    )


def chain_of(team_id: int) -> AuditChain | None:
    return AuditChain.objects.filter(scope=f"team:{team_id}").first()


def action_groups(actions: Iterable[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Actions grouped by area ("character", "member", ...) for the filter's <optgroup>s."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for action in sorted(set(actions)):
        area = action.split(".", 1)[0]
        groups.setdefault(area, []).append((action, action))
    return [(area.replace("_", " ").capitalize(), items) for area, items in groups.items()]


def describe_changes(details: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """`{field: [old, new]}` entries of an event's details (its "changes", or top-level pairs
    such as `name: [old, new]`), as rows for the diff table."""
    rows: list[tuple[str, Any, Any]] = []
    changes = details.get("changes")
    source = changes if isinstance(changes, dict) else details
    for name, value in source.items():
        if isinstance(value, list) and len(value) == 2 and name not in {"version"}:
            rows.append((str(name), value[0], value[1]))
    return rows
