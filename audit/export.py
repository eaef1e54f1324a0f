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
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any

from django.db import connections
from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.functions import Cast, Concat, Replace

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
    """iso() of created_at, whatever the driver returned."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return iso(value)


def _iso_created(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The batch with created_at spelled as iso() (PostgreSQL returns datetimes)."""
    if not batch or isinstance(batch[0][_CREATED], str):
        return batch
    return [(row[0], _created(row[1]), *row[2:]) for row in batch]


def _batches(events: QuerySet[AuditEvent], below: int | None) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of COLUMNS (details as JSON text) with ids below `below`, newest first, CHUNK
    at a time. `events` must not bound the id from above itself: SQLite keeps only one of two
    `id <` bounds, and keeping the fixed one would rescan from it for every batch."""
    connection = connections[events.db]
    columns: list[str] = [*COLUMNS[:-1], "details_text"]
    events = events.annotate(details_text=Cast("details", TextField()))
    if connection.vendor == "sqlite":
        # SQLite stores `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC (str() of the naive UTC
        # datetime): iso() but for the T and the offset, so the database spells it, and the
        # driver does not parse it into a datetime first.
        events = events.annotate(
            created_text=Concat(
                Replace(Cast("created_at", TextField()), Value(" "), Value("T")),
                Value("+00:00"),
                output_field=TextField(),
            )
        )
        columns[_CREATED] = "created_text"
    rows = events.values_list(*columns)
    last = below
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
        yield _iso_created(found)
        if len(found) < CHUNK:
            return
        last = found[-1][0]


_PG_ISO = (
    "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM %(expressions)s)::bigint %%%% 1000000 = 0"
    " THEN '' ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)


def _db_lines(events: QuerySet[AuditEvent], below: int | None) -> Iterator[bytes] | None:
    """The database writes each line (json_object / json_build_object, in C): fetching one
    text per row instead of twenty values is what the export's speed comes down to. None on
    a database without a JSON builder we know."""
    vendor = connections[events.db].vendor
    builder = {"sqlite": "json_object", "postgresql": "json_build_object"}.get(vendor)
    if builder is None:
        return None
    pairs: list[Any] = []
    for name in COLUMNS:
        if name == "created_at" and vendor == "sqlite":
            # Stored as `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC: iso() but the T and the offset.
            value: Any = Concat(
                Replace(Cast("created_at", TextField()), Value(" "), Value("T")),
                Value("+00:00"),
                output_field=TextField(),
            )
        elif name == "created_at":
            # iso(): microseconds only when there are some, as datetime.isoformat() does.
            value = Func(F("created_at"), template=_PG_ISO, output_field=TextField())
        elif name == "details" and vendor == "sqlite":
            value = Func(F("details"), function="json", output_field=TextField())
        else:
            value = F(name)
        pairs += [Value(name), value]
    return _line_batches(events, pairs, builder, below)


def _line_batches(
    events: QuerySet[AuditEvent], pairs: list[Any], builder: str, below: int | None
) -> Iterator[bytes]:
    rows = events.annotate(line=Cast(Func(*pairs, function=builder), TextField())).values_list(
        "id", "line"
    )
    connection = connections[events.db]
    last = below
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
        yield ("\n".join(line for _, line in found) + "\n").encode()
        if len(found) < CHUNK:
            return
        last = found[-1][0]


def jsonl(events: QuerySet[AuditEvent], *, below: int | None = None) -> Iterator[bytes]:
    """One JSON object per line: COLUMNS as keys, details as an object. The line is assembled
    from pre-escaped pieces (json.dumps of a dict per row cost half the export's time)."""
    prebuilt = _db_lines(events, below)
    if prebuilt is not None:
        yield from prebuilt
        return
    enc = encode_basestring_ascii
    for batch in _batches(events, below):
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
                f'{{"id":{pk},"created_at":"{created_at}","chain":{enc(chain)},'
                f'"seq":{seq},"prev_hash":{enc(prev_hash)},"hash":{enc(hash_)},'
                f'"key_id":{enc(key_id)},"team_id":{"null" if team_id is None else team_id},'
                f'"actor_id":{"null" if actor_id is None else actor_id},'
                f'"actor_label":{enc(actor_label)},"ip_address":'
                f"{'null' if ip_address is None else enc(str(ip_address))},"
                f'"user_agent":{enc(user_agent)},'
                f'"request_id":{enc(request_id)},"origin":{enc(origin)},"action":{enc(action)},'
                f'"target_type":{enc(target_type)},"target_id":{enc(target_id)},'
                f'"target_label":{enc(target_label)},"outcome":{enc(outcome)},'
                f'"details":{details or "{}"}}}\n'
            )
        yield "".join(lines).encode()


_RISKY = ("=", "+", "-", "@", "\t", "\r")
_RISKY_START = re.compile("(?:^|\x00)[=+\\-@\t\r]")
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


def csv_rows(events: QuerySet[AuditEvent], *, below: int | None = None) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writerow, writerows = writer.writerow, writer.writerows
    free_text = itemgetter(*_FREE_TEXT)
    risky = _RISKY_START.search
    for batch in _batches(events, below):
        # One C-level check per row; the rare row with a formula-like cell is defused alone.
        if any(risky("\x00".join(free_text(row))) for row in batch):
            for row in batch:
                writerow(_defuse(row) if risky("\x00".join(free_text(row))) else row)
        else:
            writerows(batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    tail = buffer.getvalue()
    if tail:
        yield tail.encode()


def _defuse(row: tuple[Any, ...]) -> list[Any]:
    """Spreadsheet formula injection: a free-text cell starting with = + - @ (or a tab or CR)
    is prefixed with '. The sealed values are recovered by removing it (the JSON Lines
    export is the one to re-verify)."""
    values = list(row)
    for index in _FREE_TEXT:
        value = values[index]
        if value and value[0] in _RISKY:
            values[index] = "'" + value
    return values
