"""Streaming exports: CSV and JSON Lines of a filtered set, with the chain fields, so an auditor
can re-verify the seals offline (docs/audit.md).

Rows are read in keyset batches — `WHERE id < last ORDER BY id DESC LIMIT n`, each a short
query on the (team, -id) index — rather than through one server-side cursor: PostgreSQL plans a
named cursor for the whole result (it sorted a million rows before the first one came out, 1.8 s
to the first bytes), and a cursor held for the length of a download pins a connection and a
snapshot. Batches give the first bytes at once, constant memory, and nothing held between them.

The rows skip Django's per-row conversion (the batch's SQL runs on a plain cursor): SQLite
hands created_at back as text that only needs re-spelling, and details come as the database's
JSON text, copied into the line as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from django.db import connections
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
CHUNK = 2000  # rows per keyset batch, and per chunk of the response body
_CREATED = COLUMNS.index("created_at")


def _created(value: datetime | str) -> str:
    """iso() of created_at. SQLite stores `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC (str() of the
    naive UTC datetime), which is isoformat() but for the T and the offset."""
    if isinstance(value, str):
        return value.replace(" ", "T", 1) + "+00:00"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return iso(value)


def _batches(events: QuerySet[AuditEvent]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of COLUMNS (details as JSON text), newest first, CHUNK at a time."""
    connection = connections[events.db]
    columns: list[str] = [*COLUMNS[:-1], "details_text"]
    events = events.annotate(details_text=Cast("details", TextField()))
    if connection.vendor == "sqlite":
        # The stored text, not the datetime the driver would parse it into.
        events = events.annotate(created_text=Cast("created_at", TextField()))
        columns[_CREATED] = "created_text"
    rows = events.values_list(*columns)
    last: int | None = None
    while True:
        batch = rows.order_by("-id")
        if last is not None:
            batch = batch.filter(id__lt=last)
        sql, params = batch[:CHUNK].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        if not found:
            return
        yield found
        if len(found) < CHUNK:
            return
        last = found[-1][0]


def _text(value: Any) -> str:
    return "null" if value is None else encode_basestring_ascii(str(value))


def _number(value: Any) -> str:
    return "null" if value is None else str(int(value))


def jsonl(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    """One JSON object per line: COLUMNS as keys, details as an object. The line is assembled
    from pre-escaped pieces (json.dumps of a dict per row cost half the export's time)."""
    enc = encode_basestring_ascii
    for batch in _batches(events):
        lines = []
        for (
            pk,
            created_at,
            chain,
            seq,
            prev_hash,
            hash_,
            key_id,
            team_id,
            actor_id,
            actor_label,
            ip_address,
            user_agent,
            request_id,
            origin,
            action,
            target_type,
            target_id,
            target_label,
            outcome,
            details,
        ) in batch:
            lines.append(
                f'{{"id":{pk},"created_at":"{_created(created_at)}","chain":{enc(chain)},'
                f'"seq":{seq},"prev_hash":{enc(prev_hash)},"hash":{enc(hash_)},'
                f'"key_id":{enc(key_id)},"team_id":{_number(team_id)},'
                f'"actor_id":{_number(actor_id)},"actor_label":{enc(actor_label)},'
                f'"ip_address":{_text(ip_address)},"user_agent":{enc(user_agent)},'
                f'"request_id":{enc(request_id)},"origin":{enc(origin)},"action":{enc(action)},'
                f'"target_type":{enc(target_type)},"target_id":{enc(target_id)},'
                f'"target_label":{enc(target_label)},"outcome":{enc(outcome)},'
                f'"details":{details or "{}"}}}\n'
            )
        yield "".join(lines).encode()


_RISKY = ("=", "+", "-", "@", "\t", "\r")
# Only free-text columns can start with a formula character (the rest are numbers, hashes,
# dates, names of our own making).
_FREE_TEXT = tuple(
    COLUMNS.index(name)
    for name in (
        "key_id",
        "actor_label",
        "user_agent",
        "request_id",
        "origin",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "details",
    )
)


def csv_rows(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writerow = writer.writerow
    for batch in _batches(events):
        for row in batch:
            values = list(row)
            values[_CREATED] = _created(values[_CREATED])
            for index in _FREE_TEXT:
                value = values[index]
                if value and value[0] in _RISKY:
                    values[index] = "'" + value
            writerow(values)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    tail = buffer.getvalue()
    if tail:
        yield tail.encode()
