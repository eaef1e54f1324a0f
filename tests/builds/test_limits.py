"""The database counters behind the limits: all windows or none, giving back, one audit per
stream of refusals, the chart's hours, and the periodic tidy-up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from builds import limits, services
from builds.limits import HOUR, MINUTE, Full, Window
from builds.models import Counter, MintedToken

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 10, 30, 15, tzinfo=UTC)


def test_take_counts_every_window_or_none() -> None:
    small, big = Window("a", MINUTE, 1, "burst"), Window("b", HOUR, 5, "hourly")
    limits.take([big, small], now=NOW)
    with pytest.raises(Full) as full:
        limits.take([big, small], now=NOW)
    assert full.value.window is small
    assert full.value.retry_after == 45  # the minute ends at 10:31:00
    assert dict(Counter.objects.values_list("scope", "count")) == {"a": 1, "b": 1}
    limits.take([big, small], now=NOW + MINUTE)  # a new minute
    assert Counter.objects.get(scope="b").count == 2


def test_a_window_another_server_opened_is_counted_in_not_opened_again() -> None:
    """The windows are raised with one UPSERT: a row another server created (even between our
    read and our write, in the old read-then-insert scheme) is counted in, never refused or
    duplicated (the benchmark's 16 clients open every new minute together)."""
    Counter.objects.create(scope="race", window_start=NOW.replace(second=0), count=1)
    limits.take([Window("race", MINUTE, 5, "burst"), Window("new", MINUTE, 5, "burst")], now=NOW)
    assert dict(Counter.objects.values_list("scope", "count")) == {"race": 2, "new": 1}


def test_an_unlimited_window_is_counted_beside_limited_ones() -> None:
    windows = [Window("open", MINUTE, None), Window("capped", MINUTE, 1, "burst")]
    limits.take(windows, now=NOW)
    with pytest.raises(Full) as full:
        limits.take(windows, now=NOW)
    assert full.value.window.scope == "capped"
    assert dict(Counter.objects.values_list("scope", "count")) == {"open": 1, "capped": 1}


def test_a_limit_of_zero_refuses_at_once() -> None:
    with pytest.raises(Full):
        limits.take([Window("z", MINUTE, 0, "burst")], now=NOW)
    assert not Counter.objects.exists()


def test_give_back_undoes_a_take() -> None:
    window = Window("a", HOUR, 2, "hourly")
    limits.take([window], now=NOW)
    limits.give_back([window], now=NOW)
    assert Counter.objects.get().count == 0


def test_first_in_window_is_true_once_per_window() -> None:
    window = Window("refused", MINUTE, None)
    assert [limits.first_in_window(window, now=NOW) for _ in range(3)] == [True, False, False]
    assert limits.first_in_window(window, now=NOW + MINUTE)


def test_hourly_gives_every_hour_oldest_first() -> None:
    window = Window("h", HOUR, None)
    limits.take([window], now=NOW - 2 * HOUR)
    limits.take([window], now=NOW)
    limits.take([window], now=NOW)
    hours = limits.hourly("h", hours=3, now=NOW)
    assert [count for _start, count in hours] == [1, 0, 2]
    assert hours[-1][0] == datetime(2026, 12, 4, 10, tzinfo=UTC)


def test_tidy_forgets_expired_tokens_and_old_windows(
    register: object, issued: services.Issued
) -> None:
    MintedToken.objects.create(
        build=issued.build,
        build_ref=issued.build.pk,
        ciphertext="x",
        expires_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    Counter.objects.create(scope="old", window_start=datetime(2020, 1, 1, tzinfo=UTC), count=3)
    summary = services.tidy_minted_tokens()
    assert summary.startswith("1 expired tokens and 1 old windows forgotten")
    assert not MintedToken.objects.exists() and not Counter.objects.exists()
    assert timedelta(hours=48) == services.WINDOWS_KEPT


@pytest.mark.django_db(transaction=True)
def test_concurrent_servers_never_pass_a_limit_together() -> None:
    """Eight connections (as eight app servers would hold) take from the same windows at once,
    new rows included: exactly the limit is granted, the rest refused, in every window."""
    if connection.vendor != "postgresql":
        pytest.skip("Concurrent writers need PostgreSQL; it runs in CI's PostgreSQL pass.")
    windows = [Window("burst", MINUTE, 7, "burst"), Window("team", HOUR, 1000, "team_hourly")]
    granted: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def server() -> None:
        try:
            start.wait()
            for _ in range(5):
                try:
                    limits.take(windows, now=NOW)
                    granted.append(True)
                except Full:
                    granted.append(False)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=server) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert granted.count(True) == 7 and len(granted) == 40
    assert dict(Counter.objects.values_list("scope", "count")) == {"burst": 7, "team": 7}
