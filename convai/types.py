"""Typed results of the Convai client.

Each dataclass carries the documented fields as attributes and keeps the whole payload in `raw`,
because Convai returns about twenty undocumented fields that we must not drop or fail on.
The parsers are tolerant: unknown fields are ignored, list-ish fields are normalised to lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def as_string_list(value: Any) -> list[str]:
    """Convai documents actions as a comma-separated string and returns them as an array;
    accept either (and None) and always hand back a list of non-empty, stripped strings."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return []
    return [str(item).strip() for item in items if str(item).strip()]


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return "" if value is None else str(value)


@dataclass(frozen=True)
class CharacterDetails:
    """One remote character. `backstory` is None when it came from `list` (list items carry
    no backstory; only `get` returns it)."""

    character_id: str
    character_name: str
    user_id: str = ""
    voice_type: str = ""
    timestamp: str = ""
    backstory: str | None = None
    actions: list[str] = field(default_factory=list)
    language_code: str = ""
    language_codes: list[str] = field(default_factory=list)
    listing: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CharacterDetails:
        """Build from a get/list item. Raises ValueError when there is no character_id."""
        character_id = payload.get("character_id")
        if not isinstance(character_id, str | int) or str(character_id) == "":
            raise ValueError("character payload has no character_id")
        backstory = payload.get("backstory")
        language_codes = as_string_list(payload.get("language_codes"))
        language_code = _text(payload, "language_code")
        if not language_codes and language_code:
            language_codes = [language_code]
        return cls(
            character_id=str(character_id),
            character_name=_text(payload, "character_name"),
            user_id=_text(payload, "user_id"),
            voice_type=_text(payload, "voice_type"),
            timestamp=_text(payload, "timestamp"),
            backstory=None if backstory is None else str(backstory),
            actions=as_string_list(payload.get("character_actions")),
            language_code=language_code,
            language_codes=language_codes,
            listing=_text(payload, "listing"),
            raw=dict(payload),
        )


@dataclass(frozen=True)
class Voice:
    """One entry of the voice table. `voice_value` is what goes into `voiceType`."""

    voice_value: str
    name: str
    section: str = ""
    gender: str = ""
    lang_codes: list[str] = field(default_factory=list)
    sample_link: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_payload(cls, section: str, name: str, payload: Mapping[str, Any]) -> Voice:
        """Build from `{display name: {voice_value, ...}}` inside a section. ValueError if the
        entry has no voice_value."""
        voice_value = payload.get("voice_value")
        if not isinstance(voice_value, str) or not voice_value:
            raise ValueError("voice entry has no voice_value")
        return cls(
            voice_value=voice_value,
            name=name,
            section=section,
            gender=_text(payload, "gender"),
            lang_codes=as_string_list(payload.get("lang_codes")),
            sample_link=_text(payload, "sample_link"),
            raw=dict(payload),
        )


@dataclass(frozen=True)
class Language:
    """One entry of the language table; codes are opaque strings (`ar`, `cmn-CN`, `zh-HK`)."""

    lang_code: str
    lang_name: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_payload(cls, key: str, payload: Mapping[str, Any]) -> Language:
        code = payload.get("lang_code") or key
        if not isinstance(code, str) or not code:
            raise ValueError("language entry has no lang_code")
        return cls(lang_code=code, lang_name=_text(payload, "lang_name") or code, raw=dict(payload))


def _number(value: Any) -> float | None:
    """A finite number, from a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _moment(value: Any) -> datetime | None:
    """An aware datetime from an ISO timestamp (naive ones are taken as UTC, as Convai's
    timestamps are) or from Unix seconds; None when missing or unreadable."""
    if isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _first_text(*candidates: Any) -> str:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return ""


@dataclass(frozen=True)
class UsageMetric:
    """One quota line of the account usage; either side is None when Convai did not say."""

    limit: float | None = None
    usage: float | None = None

    @classmethod
    def from_payload(cls, details: Any) -> UsageMetric:
        """From `usage_details`: documented as a list of `{limit, usage}`; the first readable
        entry counts, and a bare object is accepted too."""
        if isinstance(details, list):
            details = next((entry for entry in details if isinstance(entry, Mapping)), {})
        details = _mapping(details)
        return cls(limit=_number(details.get("limit")), usage=_number(details.get("usage")))


@dataclass(frozen=True)
class AccountUsage:
    """Which Convai account a key belongs to, its plan and quota (`/user/user-api-usage`).

    Only Convai's Unreal plugin documents this answer, so every field is optional: missing
    text is "", a missing or unreadable renewal date is None, and `metrics` holds only the
    metrics that came with an id (`interactions`, `core-api`, `provider_pool_1`,
    `pixel_streaming`, or any new one)."""

    account_name: str = ""
    email: str = ""
    plan_name: str = ""
    renews_at: datetime | None = None
    metrics: dict[str, UsageMetric] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AccountUsage:
        """Read tolerantly: the email is under `usage.email`, `usage.user_email` or a
        top-level `email` depending on the account; anything unreadable is left empty."""
        usage = _mapping(payload.get("usage"))
        plan = _mapping(payload.get("usage_v2"))
        entries = plan.get("metrics")
        if isinstance(entries, Mapping):  # {id: {usage_details}} rather than a list
            entries = [{"id": key, **_mapping(value)} for key, value in entries.items()]
        metrics: dict[str, UsageMetric] = {}
        for entry in entries if isinstance(entries, list) else []:
            metric_id = _mapping(entry).get("id")
            if isinstance(metric_id, str) and metric_id and metric_id not in metrics:
                metrics[metric_id] = UsageMetric.from_payload(entry.get("usage_details"))
        return cls(
            account_name=_first_text(usage.get("user_name"), payload.get("user_name")),
            email=_first_text(usage.get("email"), usage.get("user_email"), payload.get("email")),
            plan_name=_first_text(plan.get("plan_name")),
            renews_at=_moment(plan.get("expiry_ts")),
            metrics=metrics,
            raw=dict(payload),
        )


def parse_moment(value: Any) -> datetime | None:
    """A Convai timestamp as an aware datetime (naive ones are UTC), None when unreadable."""
    return _moment(value)


@dataclass(frozen=True)
class AuthToken:
    """A short-lived auth token from `/user/connect` (api-notes.md, "Short-lived tokens").

    `token` is a credential: it is never part of the repr, and callers hand it on (to a game)
    without logging or storing it in clear. `expires_at` is None when Convai sent no
    readable `expirationTime` (the SDK then treats the token as valid until refused)."""

    token: str = field(repr=False)
    expires_at: datetime | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AuthToken:
        token = payload.get("apiAuthToken")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("no apiAuthToken")
        return cls(token=token, expires_at=parse_instant(payload.get("expirationTime")))


def parse_instant(value: Any) -> datetime | None:
    """An ISO-8601 time or Unix seconds as an aware datetime (naive: UTC), or None."""
    return _moment(value)
