"""Fast inserts FOR BENCHMARK SEEDS ONLY: `insert_rows(Model, instances)` writes unsaved model
instances with PostgreSQL's COPY (psycopg's `cursor.copy`), and with `bulk_create` on any
other database. Either way each instance has its primary key afterwards, as after
`bulk_create` on PostgreSQL: on PostgreSQL the ids are drawn from the table's own sequence
first (one `nextval` per row, in one query) and written by COPY.

The values are what `bulk_create` would write: each field's `pre_save(add=True)` (so
auto_now fields behave alike) and `get_db_prep_save` (so JSON, UUIDs, inet and datetimes are
adapted by Django's own code, not here). Triggers run as for INSERT (COPY fires row triggers);
constraints and indexes are checked as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Model

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
