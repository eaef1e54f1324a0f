"""Streaming exports: CSV and JSON Lines of a filtered set, with the chain fields, so an auditor
can re-verify the seals offline (docs/audit.md). Constant memory: rows come from a server-side
iterator and leave in batches."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from .chain import iso
from .models import AuditEvent

COLUMNS = (
    "id",
    "created_at",
    "chain",
    "seq",
    "prev_hash",
    "hash",
    "key_id",
    "team_id",
    "actor_id",
    "actor_label",
    "ip_address",
    "user_agent",
    "request_id",
    "origin",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "outcome",
    "details",
)
CHUNK = 2000
BATCH = 500  # rows per chunk of the response body


def _rows(events: QuerySet[AuditEvent]) -> Iterator[tuple[Any, ...]]:
    """Rows of COLUMNS, with details as the database's JSON text: decoding and re-encoding
    it per row would cost more than everything else the export does."""
    return (
        events.annotate(details_text=Cast("details", TextField()))
        .values_list(*COLUMNS[:-1], "details_text")
        .iterator(chunk_size=CHUNK)
    )


def jsonl(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    """One JSON object per line: COLUMNS as keys, details as an object."""
    dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
    created = COLUMNS.index("created_at")
    names = COLUMNS[:-1]
    lines: list[str] = []
    for row in _rows(events):
        values = list(row)
        values[created] = iso(values[created])
        head = dumps(dict(zip(names, values[:-1], strict=True)))
        lines.append(f'{head[:-1]},"details":{values[-1]}}}')
        if len(lines) >= BATCH:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def csv_rows(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    created = COLUMNS.index("created_at")
    for count, row in enumerate(_rows(events), start=1):
        values = list(row)
        values[created] = iso(values[created])
        writer.writerow(_defuse(values))
        if count % BATCH == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _defuse(values: list[Any]) -> list[Any]:
    """Spreadsheet formula injection: a text cell starting with = + - @ is prefixed with '.
    Only free-text columns can start so; the sealed values are recovered by removing it (the
    JSON Lines export is the one to re-verify)."""
    return [
        "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
        for v in values
    ]
