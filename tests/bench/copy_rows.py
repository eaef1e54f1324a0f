"""Fast inserts FOR BENCHMARK SEEDS ONLY: `insert_rows(Model, instances)` writes unsaved model
instances with PostgreSQL's COPY (psycopg's `cursor.copy`), and with `bulk_create` on any
other database. Either way each instance has its primary key afterwards, as after
`bulk_create` on PostgreSQL: on PostgreSQL the ids are drawn from the table's own sequence
first (one `nextval` per row, in one query) and written by COPY.

The values are what `bulk_create` would write: each field's `pre_save(add=True)` (so
auto_now fields behave alike) and `get_db_prep_save` (so JSON, UUIDs, inet and datetimes are
adapted by Django's own code, not here). Triggers run as for INSERT (COPY fires row triggers);
constraints and indexes are checked as usual.

`insert_values(Model, columns, tuples)` is the faster path for millions of rows: plain
values (ints, strings, aware datetimes, dicts for JSON columns) in the named columns (field
names or attnames), no model instances and no ids back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, router
from django.db.models import JSONField, Model

BULK_BATCH = 5000


def insert_rows(model: type[Model], rows: Sequence[Model]) -> None:
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(rows, batch_size=BULK_BATCH)
        return
    meta = model._meta
    fields = list(meta.concrete_fields)
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        pk = meta.pk
        assert pk is not None
        missing = [row for row in rows if row.pk is None]
        if missing:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, pk.column, len(missing)],
            )
            for row, (new_id,) in zip(missing, cursor.fetchall(), strict=True):
                row.pk = new_id
        raw: Any = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]
                )
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias


def insert_values(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    by_name = {name: f for f in model._meta.concrete_fields for name in (f.name, f.attname)}
    fields = [by_name[name] for name in columns]
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [
                    [f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)]
                    for row in rows
                ],
            )
            return
        # COPY's text input: a JSON column takes JSON text; psycopg writes the rest.
        as_json = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
        raw: Any = cursor.cursor
        with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                if as_json:
                    row = list(row)
                    for i in as_json:
                        row[i] = json.dumps(row[i])
                copy.write_row(row)


@contextmanager
def indexes_built_after(model: type[Model]) -> Iterator[None]:
    """On PostgreSQL, load a table the way pg_restore does: its secondary indexes, unique and
    foreign-key constraints are dropped, the rows loaded, then all of them built again from
    their own definitions (one sort per index and one check per constraint instead of a
    per-row update of each). Call inside a transaction: a failure rolls all of it back.
    Elsewhere it does nothing."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        yield
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        # Foreign-key checks still pending in this transaction run now (a table with pending
        # trigger events cannot be altered); Django's are DEFERRED again at the end.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [table, table],
        )
        indexes = cursor.fetchall()
        quote = connection.ops.quote_name
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
