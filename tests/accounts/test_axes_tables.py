"""django-axes is gone: an install that had it loses its tables (usernames and IP addresses of
failed sign-ins) with accounts' migration 0003; a fresh one has nothing to drop."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.db import connection

# DDL: SQLite's schema editor needs to run outside the test's transaction.
pytestmark = pytest.mark.django_db(transaction=True)

drop_axes_tables = import_module(
    "accounts.migrations.0003_drop_django_axes_tables"
).drop_axes_tables


def axes_tables() -> set[str]:
    return {name for name in connection.introspection.table_names() if name.startswith("axes_")}


def test_the_migration_drops_leftover_axes_tables_and_their_history() -> None:
    with connection.schema_editor() as editor:
        editor.execute("CREATE TABLE axes_accessattempt (id integer PRIMARY KEY)")
        editor.execute(
            "CREATE TABLE axes_accessattemptexpiration "
            "(id integer PRIMARY KEY, access_attempt_id integer REFERENCES axes_accessattempt)"
        )
        editor.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('axes', '0001_initial', CURRENT_TIMESTAMP)"
        )
    assert axes_tables() == {"axes_accessattempt", "axes_accessattemptexpiration"}
    with connection.schema_editor() as editor:
        drop_axes_tables(None, editor)  # type: ignore[arg-type]
    assert axes_tables() == set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'axes'")
        assert cursor.fetchone()[0] == 0


def test_a_fresh_install_has_no_axes_tables() -> None:
    assert axes_tables() == set()
    with connection.schema_editor() as editor:
        drop_axes_tables(None, editor)  # type: ignore[arg-type]
