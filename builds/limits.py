"""Fixed-window counters in the database: per-build burst (a minute) and hourly limits, the
team's hourly cap, and the hourly figures the build page charts.

`take` raises the counts of several windows at once, or none of them, in one statement: an
`INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 WHERE count < limit RETURNING` over all
the windows (PostgreSQL and SQLite >= 3.35 both speak it). A full window's row is not updated
and not returned, so two app servers can never both take the last unit; the statement runs in
a short transaction that a refusal rolls back, so a refused request counts in no window (one
round trip and one commit for the three windows of a mint)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from .models import Counter

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    scope: str
    length: timedelta
    limit: int | None  # None: counted, never refused
    reason: str = ""  # the refusal code when full

    def start(self, now: datetime) -> datetime:
        seconds = self.length.total_seconds()
        return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, now.tzinfo)

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until this window ends (at least 1)."""
        remaining = (self.start(now) + self.length - now).total_seconds()
        return max(1, math.ceil(remaining))


class Full(Exception):
    def __init__(self, window: Window, retry_after: int) -> None:
        super().__init__(window.reason)
        self.window = window
        self.retry_after = retry_after


def _raise(windows: list[Window], now: datetime) -> dict[str, int]:
    """Add one to every window that has room (creating the windows not yet in the table) in
    one statement; the new counts of the windows raised, by scope. A window with a limit of 0
    or less is never raised."""
    open_ = [w for w in windows if w.limit is None or w.limit > 0]
    if not open_:
        return {}
    table = connection.ops.quote_name(Counter._meta.db_table)
    values: list[Any] = []
    for window in open_:
        values += [window.scope, connection.ops.adapt_datetimefield_value(window.start(now)), 1]
    limited = [w for w in open_ if w.limit is not None]
    # count < the window's limit; an unlimited window compares with count + 1 (always room).
    limit_of = f"{table}.count + 1"
    if limited:
        whens = " ".join("WHEN %s THEN %s" for _ in limited)
        limit_of = f"CASE {table}.scope {whens} ELSE {table}.count + 1 END"
        for window in limited:
            values += [window.scope, window.limit]
    rows = ", ".join("(%s, %s, %s)" for _ in open_)
    sql = (
        f"INSERT INTO {table} (scope, window_start, count) VALUES {rows} "  # noqa: S608
        f"ON CONFLICT (scope, window_start) DO UPDATE SET count = {table}.count + 1 "
        f"WHERE {table}.count < {limit_of} RETURNING scope, count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return {scope: count for scope, count in cursor.fetchall()}


def take(windows: list[Window], *, now: datetime | None = None) -> None:
    """Count one request in every window, or raise Full (naming the first full window) and
    count it in none."""
    now = now or timezone.now()
    with transaction.atomic():
        raised = _raise(windows, now)
        for window in windows:
            if window.scope not in raised:
                raise Full(window, window.retry_after(now))  # rolls the others back


def give_back(windows: list[Window], *, now: datetime | None = None) -> None:
    """Undo a `take` whose request did not get its token (Convai failed): it does not count."""
    now = now or timezone.now()
    for window in windows:
        Counter.objects.filter(
            scope=window.scope, window_start=window.start(now), count__gt=0
        ).update(count=F("count") - 1)


def first_in_window(window: Window, *, now: datetime | None = None) -> bool:
    """Count one event in an unlimited window; True when it is the window's first (used to
    audit a stream of identical refusals once per window, not once per request)."""
    return _raise([window], now or timezone.now()).get(window.scope) == 1


def hourly(scope: str, *, hours: int, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """The last `hours` whole-hour windows of `scope`, oldest first, zeros included."""
    now = now or timezone.now()
    window = Window(scope, HOUR, None)
    last = window.start(now)
    first = last - HOUR * (hours - 1)
    counts = dict(
        Counter.objects.filter(scope=scope, window_start__gte=first, window_start__lte=last)
        .values_list("window_start")
        .annotate(total=Sum("count"))
        .values_list("window_start", "total")
    )
    return [(first + HOUR * i, int(counts.get(first + HOUR * i, 0))) for i in range(hours)]


def prune(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Forget windows that ended long ago (the chart shows a day)."""
    now = now or timezone.now()
    deleted, _ = Counter.objects.filter(window_start__lt=now - older_than).delete()
    return deleted
