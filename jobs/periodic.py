"""Periodic background work: a registry of plain functions and the scheduler that runs them.

A periodic function takes no arguments, does one pass and returns a short summary string
("3 stale jobs marked interrupted"). It is registered once, at start-up (an app's `ready()`):

    periodic.register("jobs.sweep_stale", every="JOB_SWEEP_SECONDS", func=sweeps.sweep_stale)

`every` is a timedelta, a number of seconds, or the name of a setting holding seconds (read at
each tick, so tests and the environment can change it).

`run_due()` (called by `manage.py run_scheduler` every SCHEDULER_TICK_SECONDS) finds the
functions whose period has passed and, for each, claims the period with a conditional update of
its `PeriodicRun` row (`last_started_at` moves forward only if it is still the value read), then
queues the django task `run_periodic(name)`; a worker runs it, logs its summary and stores it on
the row. Several schedulers (or a scheduler restarted mid-period) therefore never run one
function twice in the same period. Nothing runs in tests unless a test calls `run_due`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task

from audit.context import audit_context

from . import queue
from .models import PeriodicRun

logger = logging.getLogger("convai_admin.periodic")

Every = timedelta | float | int | str


@dataclass(frozen=True)
class Periodic:
    name: str
    every: Every
    func: Callable[[], str]

    @property
    def interval(self) -> timedelta:
        every = self.every
        if isinstance(every, str):
            every = getattr(settings, every)
        if isinstance(every, timedelta):
            return every
        return timedelta(seconds=float(every))


_REGISTRY: dict[str, Periodic] = {}


def register(name: str, every: Every, func: Callable[[], str]) -> Periodic:
    """Add (or replace, for a reload) the periodic function `name`."""
    if len(name) > 100:
        raise ValueError("A periodic function's name has at most 100 characters.")
    entry = Periodic(name, every, func)
    _REGISTRY[name] = entry
    return entry


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> dict[str, Periodic]:
    return dict(_REGISTRY)


def _row(name: str) -> PeriodicRun:
    row = PeriodicRun.objects.filter(name=name).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return PeriodicRun.objects.create(name=name)
    except IntegrityError:  # another scheduler created it just now
        return PeriodicRun.objects.get(name=name)


def claim(name: str, now: datetime | None = None) -> bool:
    """Take this period of `name` if it is due: True for exactly one caller per period."""
    entry = _REGISTRY[name]
    now = now or timezone.now()
    row = _row(name)
    previous = row.last_started_at
    if previous is not None and previous > now - entry.interval:
        return False
    unchanged = Q(last_started_at__isnull=True) if previous is None else Q(last_started_at=previous)
    claimed = PeriodicRun.objects.filter(unchanged, name=name).update(
        last_started_at=now, last_status="queued"
    )
    return bool(claimed)


def run_due(now: datetime | None = None, *, inline: bool = False) -> list[str]:
    """Queue (or, `inline`, run here) every registered function whose period has passed;
    returns the names taken by this call."""
    now = now or timezone.now()
    taken = []
    for name in sorted(_REGISTRY):
        if inline:
            if claim(name, now):
                taken.append(name)
                execute(name)
            continue
        # The claim and its queued task commit together: a scheduler stopped between the two
        # leaves the period unclaimed, not claimed with nothing queued.
        with transaction.atomic():
            if not claim(name, now):
                continue
            queue.enqueue(run_periodic, name)
        taken.append(name)
        logger.info("periodic %s queued", name)
    return taken


def execute(name: str) -> str:
    """Run one periodic function now, log and store its summary (a failure too)."""
    entry = _REGISTRY.get(name)
    if entry is None:
        logger.error("periodic %s is not registered here", name)
        return "not registered"
    status = "ok"
    try:
        with audit_context(origin=f"periodic {name}"):
            summary = entry.func() or ""
    except Exception as error:
        logger.exception("periodic %s failed", name)
        status, summary = "failed", f"{type(error).__name__}: {error}"[:500]
    else:
        logger.info("periodic %s: %s", name, summary)
    PeriodicRun.objects.filter(name=name).update(
        last_finished_at=timezone.now(),
        last_status=status,
        last_summary=summary[:2000],
        runs=F("runs") + 1,
    )
    return summary


@task()
def run_periodic(name: str) -> str:
    """One pass of a periodic function, in a worker."""
    return execute(name)


def tick_seconds() -> float:
    return float(settings.SCHEDULER_TICK_SECONDS)
