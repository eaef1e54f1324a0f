"""What the stored account usage of a key says, without Convai: quotas, the core-API quota left,
the same account, and the order that proposes keys of one account first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from keys.models import ApiKey
from keys.selectors import Quota, account_groups, core_api_remaining, keys_by_account, quotas


def key(label: str, account: str = "", **metrics: tuple[float | None, float | None]) -> ApiKey:
    """An unsaved key of `account` with metrics given as id=(limit, usage) ('-' for '_')."""
    return ApiKey(
        label=label,
        last_four="abcd",
        convai_account=account,
        account_name=account,
        usage_metrics={
            name.replace("__", "-"): {"limit": limit, "usage": used}
            for name, (limit, used) in metrics.items()
        },
    )


def test_keys_of_the_same_account_come_first_in_their_given_order() -> None:
    a1, b1, a2, unknown, b2 = (
        key("a1", "a@x"),
        key("b1", "b@x"),
        key("a2", "a@x"),
        key("unknown"),
        key("b2", "b@x"),
    )
    candidates = [b1, a1, unknown, b2, a2]
    assert keys_by_account(candidates, account_of=a2) == [a1, a2, b1, unknown, b2]
    assert keys_by_account(candidates, account_of=b1) == [b1, b2, a1, unknown, a2]


def test_an_unknown_account_is_never_the_same_and_changes_no_order() -> None:
    unknown, other_unknown, known = key("u1"), key("u2"), key("k", "a@x")
    candidates = [known, other_unknown, unknown]
    assert keys_by_account(candidates, account_of=unknown) == candidates
    assert keys_by_account(candidates, account_of=None) == candidates
    assert keys_by_account(iter(candidates), account_of=known) == candidates


@pytest.mark.parametrize(
    ("metric", "remaining"),
    [
        ((20000, 19000), 1000),
        ((100, 250), 0),  # over the limit: nothing left, never negative
        ((100.0, 0.5), 99),
        ((None, 10), None),  # no limit reported
        ((0, 0), None),  # a zero limit is no limit we can draw
        ((100, None), None),
    ],
)
def test_core_api_remaining(
    metric: tuple[float | None, float | None], remaining: int | None
) -> None:
    assert core_api_remaining(key("k", "a@x", core__api=metric)) == remaining


def test_core_api_remaining_is_none_for_a_key_never_checked() -> None:
    assert core_api_remaining(key("k")) is None
    broken = key("k")
    broken.usage_metrics = {"core-api": "garbage", "interactions": {"limit": True}}
    assert core_api_remaining(broken) is None
    assert [q.limit for q in quotas(broken)] == [None, None]


def test_quotas_put_interactions_and_core_api_first() -> None:
    api_key = key(
        "k", "a@x", pixel_streaming=(60, 1), core__api=(10, 1), interactions=(5, 1), new=(1, 1)
    )
    assert [q.metric_id for q in quotas(api_key)] == [
        "interactions",
        "core-api",
        "pixel_streaming",
        "new",
    ]
    assert [q.label for q in quotas(api_key)][2:] == ["Pixel streaming", "New"]


@pytest.mark.parametrize(
    ("limit", "used", "percent", "level", "text"),
    [
        (5000, 1200, 24, "ok", "24 %"),
        (10000, 1, 0, "ok", "< 1 %"),
        (10000, 0, 0, "ok", "0 %"),
        (100, 80, 80, "low", "80 %"),
        (100, 100, 100, "out", "100 %"),
        (100, 130, 100, "out", "100 %"),
    ],
)
def test_quota_percent_and_level(
    limit: int, used: int, percent: int, level: str, text: str
) -> None:
    quota = Quota("interactions", used=used, limit=limit)
    assert (quota.percent, quota.level, quota.percent_text) == (percent, level, text)


def test_figures_are_grouped_by_thousands() -> None:
    quota = Quota("core-api", used=1234567, limit=2500.5)
    assert (quota.used_text, quota.limit_text) == ("1,234,567", "2,500.5")


def test_groups_are_by_account_name_with_the_unknown_last() -> None:
    now = timezone.now()
    older, newer = key("older", "zed@x"), key("newer", "zed@x")
    older.usage_checked_at, newer.usage_checked_at = now - timedelta(days=1), now
    older.account_name, newer.account_name = "Zed (old name)", "Zed"
    other = key("other", "amy@x")
    unknown = key("unknown")
    groups = account_groups([unknown, older, other, newer])
    assert [[k.label for k in g.api_keys] for g in groups] == [
        ["other"],
        ["older", "newer"],
        ["unknown"],
    ]
    assert groups[1].latest is newer  # the freshest figures speak for the account
    assert not groups[2].known


@pytest.mark.django_db
def test_a_usable_key_is_active_and_verified() -> None:
    from tests.keys.support import new_user

    owner = new_user()
    now = timezone.now()

    def stored(label: str, **fields: object) -> ApiKey:
        return ApiKey.objects.create(owner=owner, label=label, last_four="abcd", **fields)

    usable = stored("usable", verified_at=now)
    stored("unverified")
    stored("revoked", verified_at=now, revoked_at=now)
    assert list(ApiKey.objects.usable()) == [usable]
