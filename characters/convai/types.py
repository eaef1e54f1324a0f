"""Typed results of the Convai client.

Each dataclass carries the documented fields as attributes and keeps the whole payload in `raw`,
because Convai returns about twenty undocumented fields that we must not drop or fail on.
The parsers are tolerant: unknown fields are ignored, list-ish fields are normalised to lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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

    @property
    def character_actions(self) -> list[str]:
        """The wire name of `actions`."""
        return self.actions

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

    @property
    def value(self) -> str:
        return self.voice_value

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

    @property
    def code(self) -> str:
        return self.lang_code

    @property
    def name(self) -> str:
        return self.lang_name

    @classmethod
    def from_payload(cls, key: str, payload: Mapping[str, Any]) -> Language:
        code = payload.get("lang_code") or key
        if not isinstance(code, str) or not code:
            raise ValueError("language entry has no lang_code")
        return cls(lang_code=code, lang_name=_text(payload, "lang_name") or code, raw=dict(payload))
