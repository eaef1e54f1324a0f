"""What an attacker with write access to the database (but not the server's environment) can
do to the event table: raw SQL, with the append-only trigger switched off as a table owner
could."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection

from audit.models import AuditChain, AuditEvent

TABLE = AuditEvent._meta.db_table


@contextmanager
def trigger_off() -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield
        return
    # A superuser's way round every user trigger (the owner could also DISABLE TRIGGER).
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = origin")


def sql(statement: str, params: Sequence[Any] = ()) -> None:
    with trigger_off(), connection.cursor() as cursor:
        cursor.execute(statement, list(params))


def set_column(event_id: int, column: str, value: Any) -> None:
    sql(f"UPDATE {TABLE} SET {column} = %s WHERE id = %s", [value, event_id])


def delete_events(*ids: int) -> None:
    placeholders = ",".join(["%s"] * len(ids))
    sql(f"DELETE FROM {TABLE} WHERE id IN ({placeholders})", ids)


def wind_head_back(scope: str, seq: int, last_hash: str) -> None:
    AuditChain.objects.filter(scope=scope).update(seq=seq, last_hash=last_hash)
