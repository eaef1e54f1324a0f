"""The bundle format (schema `convai-admin/bundle@1`, docs/bundles.md): the keys a character
may have, a validated bundle, and the rules one character of a file must pass, which are the
character form's (characters/validation.py). Reading a file against them: reading.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from .. import errors, validation

SCHEMA = "convai-admin/bundle@1"
SCHEMA_FAMILY = "convai-admin/bundle@"

# Every key a character of a bundle may have (docs/bundles.md), in the order docs list them.
REQUIRED_KEYS = ("convai_id", "name", "voice_type", "backstory", "actions", "language_codes")
OPTIONAL_KEYS = (
    "snapshot",
    "version",
    "created_at",
    "updated_at",
    "synced_at",
    "pending_language_codes",
    "remote_missing_at",
    "copied_from",
)
KEPT = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS) - {"snapshot"}


class BundleInvalid(errors.CharacterError):
    """The file is not a bundle this version can import; `problems` lists why. `reason`,
    `size` and `sha256` describe the refusal for the audit trail (never the content)."""

    def __init__(
        self,
        problems: list[str],
        *,
        reason: str = "invalid",
        size: int | None = None,
        sha256: str | None = None,
    ) -> None:
        self.problems = problems
        self.reason = reason
        self.size = size
        self.sha256 = sha256
        if len(problems) == 1:
            message = f"This file cannot be imported: {problems[0]}"
        else:
            message = f"This file cannot be imported ({len(problems)} problems): " + " ".join(
                problems
            )
        super().__init__(message + " Nothing was changed.")


@dataclass(frozen=True)
class BundleCharacter:
    """One character of a bundle, validated: what an import sends to Convai."""

    ordinal: int
    convai_id: str
    name: str
    voice_type: str
    backstory: str
    actions: list[str]
    language_codes: list[str]

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "voice_type": self.voice_type,
            "backstory": self.backstory,
            "actions": list(self.actions),
            "language_codes": list(self.language_codes),
        }


@dataclass(frozen=True)
class Bundle:
    characters: list[BundleCharacter]
    team: str
    sha256: str
    size: int


def max_bytes() -> int:
    return int(getattr(settings, "CONVAI_BUNDLE_MAX_BYTES", 20 * 1024 * 1024))


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def too_large(size: int) -> BundleInvalid:
    return BundleInvalid(
        [
            f"it is {megabytes(size)}; a bundle may be at most {megabytes(max_bytes())}. "
            "Export a filtered list instead, or split it."
        ],
        reason="too_large",
        size=size,
    )


@dataclass(frozen=True)
class Opaque:
    """A value read and checked but not kept: only its JSON type matters."""

    kind: str


def shown(text: str, limit: int = 40) -> str:
    """Text from the file, safe to quote in a message (invisible characters escaped)."""
    cut = text[:limit]
    if cut.isprintable():
        return cut
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)


def _check(
    where: str, key: str, value: Any, clean: Callable[[Any], Any], problems: list[str]
) -> Any:
    try:
        return clean(value)
    except ValidationError as error:
        problems.append(f"{where}: “{key}”: {validation.message(error)}")
        return None


def _listed(clean: Callable[[Iterable[object]], list[str]]) -> Callable[[Any], list[str]]:
    def checked(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValidationError("This must be a list of texts.")
        return clean(value)

    return checked


def character_from(number: int, item: Any, problems: list[str]) -> BundleCharacter | None:
    where = f"Character {number}"
    if not isinstance(item, dict):
        problems.append(f"{where} is not an object.")
        return None
    name_value = item.get("name")
    if isinstance(name_value, str) and name_value.strip():
        where = f"Character {number} (“{shown(name_value.strip())}”)"
    before = len(problems)
    missing = [key for key in REQUIRED_KEYS if key not in item]
    if missing:
        problems.append(f"{where} has no “{missing[0]}”.")
        return None
    unknown = sorted(set(item) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        problems.append(f"{where} has an unknown key “{shown(unknown[0])}”.")
    # The character form's rules, exactly (characters/validation.py).
    convai_id = _check(where, "convai_id", item["convai_id"], validation.clean_convai_id, problems)
    name = _check(where, "name", item["name"], validation.clean_name, problems)
    voice_type = _check(
        where, "voice_type", item["voice_type"], validation.clean_voice_type, problems
    )
    backstory = _check(where, "backstory", item["backstory"], validation.clean_backstory, problems)
    actions = _check(where, "actions", item["actions"], _listed(validation.clean_actions), problems)
    codes = _check(
        where,
        "language_codes",
        item["language_codes"],
        _listed(validation.clean_language_codes),
        problems,
    )
    _optional(where, item, problems)
    if len(problems) > before:
        return None
    return BundleCharacter(
        ordinal=number,
        convai_id=convai_id,
        name=name,
        voice_type=voice_type,
        backstory=backstory,
        actions=actions,
        language_codes=codes,
    )


def _moment_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 40 and value.isprintable()


def _optional(where: str, item: dict[str, Any], problems: list[str]) -> None:
    """The informative keys are not imported, but a wrong type still means a wrong file."""
    snapshot = item.get("snapshot", Opaque("object"))
    if not (isinstance(snapshot, Opaque) and snapshot.kind == "object"):
        problems.append(f"{where}: “snapshot” must be an object.")
    version = item.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        problems.append(f"{where}: “version” must be a whole number.")
    for key in ("created_at", "updated_at", "synced_at", "remote_missing_at"):
        value = item.get(key)
        if value is not None and not _moment_text(value):
            problems.append(f"{where}: “{key}” must be a date and time, or null.")
    pending = item.get("pending_language_codes")
    if pending is not None:
        _check(
            where,
            "pending_language_codes",
            pending,
            _listed(validation.clean_language_codes),
            problems,
        )
    copied = item.get("copied_from")
    if copied is not None and not (
        isinstance(copied, dict)
        and isinstance(copied.get("convai_id"), str)
        and validation.CONVAI_ID.fullmatch(copied["convai_id"])
        and (copied.get("revision") is None or type(copied.get("revision")) is int)
        and set(copied) <= {"convai_id", "revision"}
    ):
        problems.append(f"{where}: “copied_from” must be an object with a “convai_id”, or null.")
