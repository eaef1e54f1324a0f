"""`ago` ("5 minutes ago" in the list and the banners) says what Django's timesince says
with depth 1, word for word: it only skips timesince's general machinery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import override

from characters.templatetags.characters_extras import ago

NOWS = [
    datetime(2026, 12, 4, 18, 30, 15, 123456, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, 30, tzinfo=UTC),  # after a leap day
    datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),  # month ends
    datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),  # around a DST change
]
UNITS = (60, 3600, 86400, 604800)
SECONDS = sorted(
    {
        *range(0, 130),
        *(n * unit + d for unit in UNITS for n in range(1, 9) for d in (-1, 0, 1)),
        *(day * 86400 + d for day in range(20, 800, 7) for d in (-61, -1, 0, 1, 3599, 3601)),
        *(year * 365 * 86400 + d for year in (1, 2, 4) for d in (-86400, -1, 0, 1, 86400)),
    }
)


def _reference(moment: datetime, now: datetime) -> str:
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now=now, depth=1)} ago"


@pytest.mark.parametrize("now", NOWS, ids=str)
def test_ago_says_what_timesince_says(now: datetime) -> None:
    for seconds in SECONDS:
        for moment in (now - timedelta(seconds=seconds), now + timedelta(seconds=seconds)):
            for tz in (UTC, ZoneInfo("America/Los_Angeles")):
                moment = moment.astimezone(tz)
                assert ago(moment, now) == _reference(moment, now), (now, moment)


def test_ago_reads_the_clock_when_not_given_a_moment_and_none_is_empty() -> None:
    assert ago(None) == ""
    assert ago(timezone.now()) == "just now"
    assert ago(timezone.now() - timedelta(minutes=5, seconds=2)) == "5\xa0minutes ago"


def test_ago_speaks_the_active_language() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    now = moment + timedelta(days=3, hours=1)
    with override("fr"):
        assert ago(moment, now) == _reference(moment, now)
    assert ago(moment, now) == "3\xa0days ago"
