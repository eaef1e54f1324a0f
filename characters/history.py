"""A character's history as people read it: revisions newest first, each with what changed
since the one before, and any two revisions compared.

Pure reading: the diffs are computed here from stored revisions (no Convai call, no write), so
the detail page, the "Full history" page, the compare page and the restore confirmation all
show changes the same way as the drift and conflict panels (`change_rows`, `line_diff`).
A page of history costs a constant number of queries: one count and one slice of revisions
(one more than shown, so the oldest on the page still has the one before it to diff against).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from audit.models import AuditEvent
from audit.selectors import Criteria, events_matching

from .catalogue import language_label, voice_label
from .models import Character, Revision
from .remote import FieldChange, differences

HISTORY_PAGE_SIZE = 20
AUDIT_EVENTS_SHOWN = 10
# Snapshot keys that are our edited fields (or the ID): every other key is "unknown" to the
# dashboard, shown read-only and diffed as JSON.
EDITED_SNAPSHOT_KEYS = frozenset(
    {
        "character_id",
        "character_name",
        "voice_type",
        "backstory",
        "character_actions",
        "language_code",
        "language_codes",
    }
)


# --- Differences as rows ---------------------------------------------------------------------


def display(value: Any, field: str = "") -> str:
    """A value as a diff shows it; a voice or languages by Convai's names (unknown ones as
    they are), so no page shows a raw `GuyNeural` or `de-DE` where a name exists."""
    if field == "voice_type" and isinstance(value, str) and value:
        return voice_label(value)
    if field in ("language_codes", "language_code") and value:
        codes = value if isinstance(value, list) else [value]
        if all(isinstance(code, str) for code in codes):
            return ", ".join(language_label(code) for code in codes)
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value in (None, ""):
        return "(empty)"
    return str(value)


def line_diff(old: str, new: str) -> list[dict[str, str]]:
    """A readable line diff: removed (-), added (+) and a little unchanged context."""
    lines: list[dict[str, str]] = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            # "…" marks skipped unchanged lines (not before a hunk that starts at the top).
            if lines or not line.startswith(("@@ -1,", "@@ -1 ", "@@ -0,")):
                lines.append({"kind": "gap", "text": "…"})
        elif line.startswith("-"):
            lines.append({"kind": "del", "text": line[1:]})
        elif line.startswith("+"):
            lines.append({"kind": "add", "text": line[1:]})
        else:
            lines.append({"kind": "same", "text": line[1:]})
    return lines


@dataclass(frozen=True)
class SnapshotChange(FieldChange):
    """A change of a snapshot key the dashboard does not edit (compared as JSON)."""

    @property
    def label(self) -> str:
        return self.field

    @property
    def is_text(self) -> bool:
        return isinstance(self.old, dict | list) or isinstance(self.new, dict | list)


def _as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def snapshot_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[SnapshotChange]:
    """Changes of the snapshot keys outside the edited fields, in key order. A snapshot without
    a character ID (none was read back) has nothing to compare."""
    if not before.get("character_id") or not after.get("character_id"):
        return []
    changes = []
    for key in sorted((set(before) | set(after)) - EDITED_SNAPSHOT_KEYS):
        old, new = before.get(key), after.get(key)
        if _as_json(old) != _as_json(new):
            changes.append(SnapshotChange(key, old, new))
    return changes


def change_rows(changes: list[FieldChange], *, left: str, right: str) -> list[dict[str, Any]]:
    """Field-by-field rows for a diff panel; the backstory (and JSON values) get a line diff."""
    rows = []
    for change in changes:
        unknown = isinstance(change, SnapshotChange)
        row: dict[str, Any] = {
            "field": change.field,
            "label": change.label,
            "unknown": unknown,
            "old": display(change.old, change.field),
            "new": display(change.new, change.field),
            "left": left,
            "right": right,
            "lines": [],
        }
        if unknown and change.is_text:
            row["lines"] = line_diff(
                _as_json(change.old) if change.old is not None else "",
                _as_json(change.new) if change.new is not None else "",
            )
        elif change.is_text:
            row["lines"] = line_diff(str(change.old or ""), str(change.new or ""))
        rows.append(row)
    return rows


# --- Revisions -------------------------------------------------------------------------------


def revision_changes(before: Revision | None, after: Revision) -> list[FieldChange]:
    """What `after` changed since `before`: edited fields, then unknown snapshot fields."""
    if before is None:
        return []
    changes: list[FieldChange] = list(differences(before.fields or {}, after.fields or {}))
    changes += snapshot_changes(before.snapshot or {}, after.snapshot or {})
    return changes


@dataclass
class Entry:
    """One revision in the history, with its changes against the one before it."""

    revision: Revision
    previous_number: int | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first(self) -> bool:
        return self.previous_number is None

    @property
    def changed_labels(self) -> list[str]:
        return [row["label"] for row in self.rows]


@dataclass
class HistoryPage:
    entries: list[Entry]
    total: int
    number: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def _revisions(character: Character) -> QuerySet[Revision]:
    return Revision.objects.filter(character=character).select_related("created_by")


def history_page(
    character: Character, page: int | str | None = 1, *, per_page: int = HISTORY_PAGE_SIZE
) -> HistoryPage:
    """Revisions newest first, `per_page` at a time, each diffed against the one before it.
    Two queries whatever the page size: the count, and the page plus one older revision."""
    total = _revisions(character).count()
    pages = max(1, -(-total // per_page))
    try:
        number = min(max(1, int(page or 1)), pages)
    except (TypeError, ValueError):
        number = 1
    start = (number - 1) * per_page
    rows = list(_revisions(character).order_by("-number")[start : start + per_page + 1])
    entries = []
    for index, revision in enumerate(rows[:per_page]):
        before = rows[index + 1] if index + 1 < len(rows) else None
        entries.append(
            Entry(
                revision,
                before.number if before is not None else None,
                change_rows(
                    revision_changes(before, revision),
                    left=f"Version {before.number}" if before else "",
                    right=f"Version {revision.number}",
                ),
            )
        )
    return HistoryPage(entries, total, number, per_page)


@dataclass
class Comparison:
    older: Revision
    newer: Revision
    rows: list[dict[str, Any]]


def revision_numbers(character: Character) -> list[int]:
    """Every revision number of the character, newest first (the compare form's choices)."""
    return list(
        Revision.objects.filter(character=character)
        .order_by("-number")
        .values_list("number", flat=True)
    )


def compare(character: Character, first: int, second: int) -> Comparison | None:
    """The changes from the older of two revisions to the newer (None if either is missing).
    One query."""
    wanted = {first, second}
    found = {r.number: r for r in _revisions(character).filter(number__in=wanted)}
    if set(found) != wanted:
        return None
    older, newer = found[min(wanted)], found[max(wanted)]
    changes: list[FieldChange] = []
    if older.pk != newer.pk:
        changes = list(differences(older.fields or {}, newer.fields or {}))
        changes += snapshot_changes(older.snapshot or {}, newer.snapshot or {})
    rows = change_rows(changes, left=f"Version {older.number}", right=f"Version {newer.number}")
    return Comparison(older, newer, rows)


def restore_changes(character: Character, revision: Revision) -> list[FieldChange]:
    """What restoring `revision` would change in the character as it is now (edited fields:
    the rest of a snapshot is Convai's to keep)."""
    return differences(character.editable(), restorable_fields(revision))


def restorable_fields(revision: Revision) -> dict[str, Any]:
    """The revision's edited fields that can be sent back (an empty language list cannot:
    a Convai character always speaks one, so the current languages stay)."""
    fields = dict(revision.fields or {})
    if not fields.get("language_codes"):
        fields.pop("language_codes", None)
    return fields


# --- Audit events of a character ----------------------------------------------------------------


ACTION_LABELS = {
    "character.create": "Create",
    "character.update": "Edit",
    "character.import": "Import",
    "character.clone": "Clone",
    "character.copy": "Copy",
    "character.sync": "Sync from Convai",
    "character.restore": "Restore",
    "character.rebind": "Rebind",
    "character.delete": "Delete",
    "character.get": "Read from Convai",
    "character.export": "Export",
    "character.drift_detected": "Seen changed in Convai",
}
OUTCOME_BADGES = {"success": "success", "failure": "danger", "denied": "warning"}


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent

    @property
    def label(self) -> str:
        return ACTION_LABELS.get(self.event.action, self.event.action)

    @property
    def badge(self) -> str:
        return OUTCOME_BADGES.get(self.event.outcome, "muted")


def audit_events(character: Character, limit: int = AUDIT_EVENTS_SHOWN) -> list[EventRow]:
    """The character's latest audit events in its team, newest first (one query), through the
    audit app's own filter, so the list matches the audit log filtered to this character."""
    if not character.convai_id:
        return []
    criteria = Criteria(target_type="character", target_id=character.convai_id)
    return [EventRow(e) for e in events_matching(character.team_id, criteria)[:limit]]
