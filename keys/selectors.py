"""Read queries for personal API keys, always scoped to their owner, and what the stored account
usage of a key says (quotas, the same Convai account, the core-API quota left)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.models import User

from .models import ApiKey

# The quotas the dashboard spends, first and as bars; the others follow under their own names.
MAIN_METRICS = ("interactions", "core-api")
METRIC_LABELS = {
    "interactions": "Interactions",
    "core-api": "Core API calls",
    "provider_pool_1": "ElevenLabs voices",
    "pixel_streaming": "Pixel streaming",
}
NEARLY_USED_UP = 80  # per cent: the bar turns amber from here, red at 100


def api_keys_for(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=user, revoked_at__isnull=True).order_by("-created_at")


def has_api_key(user: User) -> bool:
    return api_keys_for(user).exists()


@dataclass(frozen=True)
class Quota:
    """One usage metric as last read: `used` of `limit` (either None when Convai did not say)."""

    metric_id: str
    used: int | float | None
    limit: int | float | None

    @property
    def label(self) -> str:
        return METRIC_LABELS.get(self.metric_id) or self.metric_id.replace("_", " ").capitalize()

    @property
    def has_limit(self) -> bool:
        return self.limit is not None and self.limit > 0

    @property
    def percent(self) -> int | None:
        """Share of the limit used, rounded down, capped at 100; None without a limit."""
        if not self.has_limit or self.used is None or self.limit is None:
            return None
        return min(100, int(self.used * 100 // self.limit))

    @property
    def remaining(self) -> int | None:
        if not self.has_limit or self.used is None or self.limit is None:
            return None
        return max(0, int(self.limit - self.used))

    @property
    def percent_text(self) -> str:
        """ "12 %", or "< 1 %" for a little use that rounds down to nothing."""
        if self.percent is None:
            return ""
        if self.percent == 0 and self.used:
            return "< 1 %"
        return f"{self.percent} %"

    @property
    def used_text(self) -> str:
        return _figure(self.used)

    @property
    def limit_text(self) -> str:
        return _figure(self.limit)

    @property
    def remaining_text(self) -> str:
        return _figure(self.remaining)

    @property
    def meter_low(self) -> float | None:
        """Where a <meter> stops being "fine" (its `low`): NEARLY_USED_UP % of the limit."""
        return None if self.limit is None else self.limit * NEARLY_USED_UP / 100

    @property
    def meter_high(self) -> float | None:
        """Where it turns red (its `high`): just under the limit, since a <meter> at exactly
        `high` = `max` still draws the middle colour."""
        return None if self.limit is None else self.limit * 0.999

    @property
    def level(self) -> str:
        """ "ok", "low" (nearly used up) or "out", for the bar's colour and its words."""
        percent = self.percent
        if percent is None or percent < NEARLY_USED_UP:
            return "ok"
        return "out" if self.remaining == 0 else "low"


def _figure(value: int | float | None) -> str:
    """12,345 (or 12,345.5); "" when unknown."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")


def _reading(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def quotas(api_key: ApiKey) -> list[Quota]:
    """Every metric stored for the key: interactions and core API first, then the others in
    the order Convai sent them."""
    stored = api_key.usage_metrics if isinstance(api_key.usage_metrics, dict) else {}
    ordered = [m for m in MAIN_METRICS if m in stored] + [
        m for m in stored if m not in MAIN_METRICS
    ]
    result = []
    for metric_id in ordered:
        entry = stored[metric_id]
        entry = entry if isinstance(entry, dict) else {}
        result.append(
            Quota(metric_id, used=_reading(entry.get("usage")), limit=_reading(entry.get("limit")))
        )
    return result


def core_api_remaining(api_key: ApiKey) -> int | None:
    """Core-API calls left on the key's account as last checked (never below 0); None when
    unknown. A bulk job shows it before it starts; refresh the usage first for a fresh figure
    (keys.services.refresh_api_key_usage)."""
    for quota in quotas(api_key):
        if quota.metric_id == "core-api":
            return quota.remaining
    return None


def same_account(api_key: ApiKey, other: ApiKey) -> bool:
    """Both keys are known to belong to one Convai account (unknown is never "the same")."""
    return bool(api_key.convai_account) and api_key.convai_account == other.convai_account


def keys_by_account(api_keys: Iterable[ApiKey], account_of: ApiKey | None) -> list[ApiKey]:
    """`api_keys` with those of `account_of`'s Convai account first, each part in its given
    order (a stable sort): rebinding a character proposes a key of the same account first.
    With no key, or one whose account is unknown, the order is unchanged."""
    candidates = list(api_keys)
    if account_of is None or not account_of.convai_account:
        return candidates
    return sorted(candidates, key=lambda key: not same_account(key, account_of))


@dataclass(frozen=True)
class AccountGroup:
    """A member's keys of one Convai account (or those whose account is not known yet), shown
    together: quota is the account's, so it is shown once, from the latest check."""

    identity: str
    api_keys: list[ApiKey]

    @property
    def known(self) -> bool:
        return bool(self.identity)

    @property
    def latest(self) -> ApiKey:
        """The key whose usage was read most recently: its figures are the account's."""
        return max(
            self.api_keys,
            key=lambda key: (
                key.usage_checked_at is not None,
                key.usage_checked_at or key.created_at,
            ),
        )

    @property
    def quotas(self) -> list[Quota]:
        return quotas(self.latest)

    @property
    def main_quotas(self) -> list[Quota]:
        return [q for q in self.quotas if q.metric_id in MAIN_METRICS]

    @property
    def other_quotas(self) -> list[Quota]:
        return [q for q in self.quotas if q.metric_id not in MAIN_METRICS]


def account_groups(api_keys: Iterable[ApiKey]) -> list[AccountGroup]:
    """Keys grouped by Convai account, accounts by name (each keeping its keys' order); the
    keys whose account is unknown (unverified, or Convai's answer was unreadable) last."""
    groups: dict[str, list[ApiKey]] = {}
    unknown: list[ApiKey] = []
    for api_key in api_keys:
        if api_key.convai_account:
            groups.setdefault(api_key.convai_account, []).append(api_key)
        else:
            unknown.append(api_key)
    result = sorted(
        (AccountGroup(identity, keys) for identity, keys in groups.items()),
        key=lambda group: (group.latest.account_label.casefold(), group.identity),
    )
    if unknown:
        result.append(AccountGroup("", unknown))
    return result
