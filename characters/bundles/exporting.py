"""Export: the team's characters (all, the list's filter, or one) as a bundle, streamed over
an iterator of plain rows, so 10,000 characters take the memory of one. The document is exactly
`json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"` with the characters
ordered by Convai ID, and holds no moment of export: two exports of the same state are
byte-identical and diff cleanly in git (the moment is in the file name and the audit event)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from audit.services import record
from teams.models import Membership

from .. import operations, selectors
from ..models import Character
from ..remote import redact
from ..selectors import CharacterFilters, team_characters
from .schema import SCHEMA

_COLUMNS = (
    "convai_id",
    "name",
    "voice_type",
    "backstory",
    "actions",
    "language_codes",
    "snapshot",
    "version",
    "created_at",
    "updated_at",
    "synced_at",
    "pending_language_codes",
    "remote_missing_at",
    "copied_from__convai_id",
    "copied_from_revision",
)


@dataclass(frozen=True)
class Export:
    filename: str
    count: int
    chunks: Iterator[bytes]


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    copied = row["copied_from__convai_id"]
    return {
        "convai_id": row["convai_id"],
        "name": row["name"],
        "voice_type": row["voice_type"],
        "backstory": row["backstory"],
        "actions": list(row["actions"] or []),
        "language_codes": list(row["language_codes"] or []),
        # Stored redacted already; redacted again so no export can ever carry a secret.
        "snapshot": redact(row["snapshot"] or {}),
        "version": row["version"],
        "created_at": _moment(row["created_at"]),
        "updated_at": _moment(row["updated_at"]),
        "synced_at": _moment(row["synced_at"]),
        "pending_language_codes": row["pending_language_codes"],
        "remote_missing_at": _moment(row["remote_missing_at"]),
        "copied_from": (
            {"convai_id": copied, "revision": row["copied_from_revision"]} if copied else None
        ),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _indented(value: Any, prefix: str) -> str:
    """`value` as it appears nested at `prefix` in the whole document (first line unindented)."""
    return _dumps(value).replace("\n", "\n" + prefix)


def render_bundle(
    entries: Iterable[Mapping[str, Any]], *, team: str, selection: Mapping[str, Any]
) -> Iterator[bytes]:
    """The document, in pieces of about 64 KB, byte for byte what `json.dumps` would make of it
    whole (with sort_keys, indent 2, ensure_ascii off) plus a newline."""
    buffer: list[str] = []
    size = 0
    head = '{\n  "characters": ['
    first = True
    buffer.append(head)
    for entry in entries:
        piece = ("\n    " if first else ",\n    ") + _indented(entry, "    ")
        first = False
        buffer.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    tail = "]" if first else "\n  ]"
    tail += f',\n  "schema": {_dumps(SCHEMA)}'
    tail += f',\n  "selection": {_indented(dict(selection), "  ")}'
    tail += f',\n  "team": {_dumps(team)}\n}}\n'
    buffer.append(tail)
    yield "".join(buffer).encode()


def _selection(filters: CharacterFilters | None, character: Character | None) -> dict[str, Any]:
    if character is not None:
        return {"character": character.convai_id}
    if filters is None:
        return {}
    chosen: dict[str, Any] = {
        "q": filters.q,
        "voice": filters.voice,
        "language": filters.language,
        "key": filters.key,
    }
    selection = {name: value for name, value in chosen.items() if value}
    if filters.unusable:
        selection["unusable"] = True
    return selection


def export_characters(
    *,
    actor: Membership,
    filters: CharacterFilters | None = None,
    character_id: int | None = None,
) -> Export:
    """The team's live characters (all, the list's filter, or one) as a bundle, streamed.
    Audited once, with the count and the selection, before the first byte leaves."""
    character = None
    if character_id is not None:
        character = selectors.character_for(actor, character_id, live=False)
        operations.authorize(actor=actor, action="character.export", character=character)
        queryset: QuerySet[Character] = Character.objects.filter(pk=character.pk)
    else:
        operations.authorize(actor=actor, action="character.export")
        queryset = Character.objects.filter(
            pk__in=team_characters(actor.team, filters).order_by().values("pk")
        )
    selection = _selection(filters, character)
    rows = queryset.order_by("convai_id", "pk").values(*_COLUMNS)
    count = queryset.count()
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    subject = _slug(character.name) if character is not None else "characters"
    filename = f"{actor.team.slug}-{subject}-{stamp}.json"
    record(
        "character.export",
        actor=actor.user,
        team=actor.team,
        target_type="character" if character is not None else "team",
        target_id=character.convai_id if character is not None else actor.team.slug,
        target_label=character.name if character is not None else actor.team.name,
        details={"count": count, "filter": selection, "filename": filename, "schema": SCHEMA},
    )
    entries = (_entry(row) for row in rows.iterator(chunk_size=500))
    return Export(
        filename, count, render_bundle(entries, team=actor.team.slug, selection=selection)
    )


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:40] or "character"
