"""How a moment is written for people, and how names sort, in one place: templates use them
through the `display` filters, Python code (row data, messages) calls them directly."""

from __future__ import annotations

import re
from datetime import date, datetime

from django.utils import timezone


def moment_text(value: datetime | date, kind: str = "") -> str:
    """ "4 Dec 2026, 14:20 UTC" in the server's time zone; `kind` "day" gives "4 Dec 2026",
    "seconds" "4 Dec 2026, 14:20:05 UTC" (the audit log, where seconds matter). Plain
    strftime, not the date filter: the character list formats one per row."""
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    day = f"{value.day} {value:%b %Y}"
    if not isinstance(value, datetime) or kind == "day":
        return day
    clock = f"{value:%H:%M:%S}" if kind == "seconds" else f"{value:%H:%M}"
    return f"{day}, {clock} {value.tzname() or ''}".rstrip()


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts "NPC 2" before "NPC 10" (case-insensitive)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in _DIGITS.split(text or "")
        if part
    )
