"""Fixed-window counters in the database: per-build burst (a minute) and hourly limits, the
team's hourly cap, and the hourly figures the build page charts.

`take` raises the counts of several windows at once, or none of them: each window is raised
with `UPDATE ... SET count = count + 1 WHERE count < limit`, so two app servers can never both
take the last unit, and the step runs in one transaction that a refusal rolls back (one commit,
so one WAL flush, for the three windows of a mint rather than three)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
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


def _raise_one(window: Window, start: datetime) -> bool:
    counters = Counter.objects.filter(scope=window.scope, window_start=start)
    limited = counters.filter(count__lt=window.limit) if window.limit is not None else counters
    if limited.update(count=F("count") + 1):
        return True
    if window.limit is not None and window.limit <= 0:
        return False
    if counters.exists():
        # Full — or another server created the window's row after our UPDATE: ask once more.
        return bool(limited.update(count=F("count") + 1))
    try:
        with transaction.atomic():  # a savepoint: a concurrent first insert may win
            Counter.objects.create(scope=window.scope, window_start=start, count=1)
        return True
    except IntegrityError:
        return bool(limited.update(count=F("count") + 1))


def take(windows: list[Window], *, now: datetime | None = None) -> None:
    """Count one request in every window, or raise Full (naming the first full window) and
    count it in none."""
    now = now or timezone.now()
    with transaction.atomic():
        for window in windows:
            if not _raise_one(window, window.start(now)):
                raise Full(window, window.retry_after(now))


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
    now = now or timezone.now()
    start = window.start(now)
    with transaction.atomic():
        _raise_one(window, start)
        return Counter.objects.filter(scope=window.scope, window_start=start, count=1).exists()


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
