"""Between Convai's payloads and our record: field mapping, redaction, and differences.

Pure functions (no database, no HTTP), so drift, conflict and revision diffs all compare the
same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convai.types import CharacterDetails, as_string_list

from .models import EDITABLE_FIELDS

REDACTED = "[redacted]"
# Keys under which Convai may hold a third-party secret (a function's source code, an MCP
# server's auth headers, a custom LLM's API key): their values never reach our database,
# a diff, an export or the audit log. A name is split into words (snake, kebab, camel case)
# and is secret when one word is, or when its letters run two secret words together
# ("apikey"); whole words, so `keywords`, `author` and `max_tokens` are kept.
_SECRET_WORDS = frozenset(
    {
        "key", "keys", "secret", "secrets", "token", "password", "passwd", "passphrase",
        "pwd", "auth", "authorization", "authentication", "bearer", "credential",
        "credentials", "cookie", "cookies", "headers", "signature",
    }
)  # fmt: skip
_SECRET_RUNS = re.compile(
    r"(api|access|secret|private|auth|client|session|refresh|bearer|id)(key|token|secret)"
    r"|password|passwd|passphrase|credential|sourcecode|functioncode"
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_name(name: str) -> bool:
    """Whether a payload key may hold a secret (see _SECRET_WORDS)."""
    words = [word.lower() for word in _WORD.findall(name)]
    return any(word in _SECRET_WORDS for word in words) or bool(_SECRET_RUNS.search("".join(words)))


FIELD_LABELS: dict[str, str] = {
    "name": "Name",
    "voice_type": "Voice",
    "backstory": "Backstory",
    "actions": "Actions",
    "language_codes": "Languages",
}


def redact(value: Any) -> Any:
    """A copy of a payload with every secret-bearing value replaced."""
    if isinstance(value, Mapping):
        return {
            str(key): (REDACTED if is_secret_name(str(key)) else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def fields_from_remote(details: CharacterDetails) -> dict[str, Any]:
    """Our editable fields as Convai holds them (a list item has no backstory: None)."""
    return {
        "name": details.character_name,
        "voice_type": details.voice_type,
        "backstory": details.backstory,
        "actions": list(details.actions),
        "language_codes": list(details.language_codes),
    }


def fields_from_snapshot(snapshot: Mapping[str, Any]) -> dict[str, Any] | None:
    """The editable fields of a stored snapshot, or None when there is none to compare."""
    if not snapshot.get("character_id"):
        return None
    try:
        return fields_from_remote(CharacterDetails.from_payload(snapshot))
    except ValueError:
        return None


def normalise(field: str, value: Any) -> Any:
    """Compare like with like: lists as lists of stripped strings, text with Convai's line
    endings folded."""
    if field in {"actions", "language_codes"}:
        return as_string_list(value)
    if value is None:
        return None
    text = str(value).replace("\r\n", "\n")
    return text.strip() if field != "backstory" else text.rstrip()


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    @property
    def label(self) -> str:
        return FIELD_LABELS.get(self.field, self.field)

    @property
    def is_text(self) -> bool:
        return self.field == "backstory"


def differences(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: tuple[str, ...] = EDITABLE_FIELDS
) -> list[FieldChange]:
    """Field-by-field changes from `before` to `after` (a None on either side — unknown, as
    the backstory of a list item — is not a change)."""
    changes = []
    for field in fields:
        old, new = before.get(field), after.get(field)
        if old is None or new is None:
            continue
        if normalise(field, old) != normalise(field, new):
            changes.append(FieldChange(field, old, new))
    return changes


def audit_changes(changes: list[FieldChange]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for the audit log (backstories are shortened: the revision
    keeps them whole)."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 300:
            return value[:300] + "…"
        return value

    return {change.field: [short(change.old), short(change.new)] for change in changes}
