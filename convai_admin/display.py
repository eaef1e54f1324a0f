"""How a moment is written for people, and how names sort, in one place: templates use them
through the `display` filters, Python code (row data, messages) calls them directly."""

from __future__ import annotations

import re
from datetime import date, datetime

from django.utils import dateformat, timezone

DAY_FORMAT = "j M Y"
MOMENT_FORMATS = {"": "j M Y, H:i T", "seconds": "j M Y, H:i:s T", "day": DAY_FORMAT}


def moment_text(value: datetime | date, kind: str = "") -> str:
    """ "4 Dec 2026, 14:20 UTC" in the server's time zone; `kind` "day" gives "4 Dec 2026",
    "seconds" "4 Dec 2026, 14:20:05 UTC" (the audit log, where seconds matter)."""
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return dateformat.format(value, MOMENT_FORMATS.get(kind, MOMENT_FORMATS[""]))
    return dateformat.format(value, DAY_FORMAT)


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts "NPC 2" before "NPC 10" (case-insensitive)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in _DIGITS.split(text or "")
        if part
    )
