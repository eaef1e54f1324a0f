"""The database half of a backup: dump, restore, "is it empty", and which schema it has.

SQLite is copied with its online backup API (`sqlite3.Connection.backup`: a consistent copy
while the service runs); PostgreSQL with `pg_dump --format=custom` and `pg_restore`, run with
the connection's settings and the password in the environment (PGPASSWORD), never on the
command line.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from .errors import BackupError

SQLITE_MEMBER = "database.sqlite3"
POSTGRESQL_MEMBER = "database.pgdump"
MEMBERS = {"sqlite": SQLITE_MEMBER, "postgresql": POSTGRESQL_MEMBER}
# Rows `migrate` itself writes: a migrated install with nothing else is still empty.
MIGRATE_WRITES = {ContentType._meta.db_table, Permission._meta.db_table}


def vendor() -> str:
    if connection.vendor not in MEMBERS:
        raise BackupError(
            f"Backups support SQLite and PostgreSQL; this install uses {connection.vendor}."
        )
    return connection.vendor


# --- Schema versions ------------------------------------------------------------------------


def code_schema() -> dict[str, str]:
    """The latest migration of each app in this version's code."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    latest: dict[str, str] = {}
    for app, name in loader.graph.leaf_nodes():
        latest[app] = max(name, latest.get(app, ""))
    return latest


def database_schema() -> dict[str, str]:
    """The latest migration applied to the database, per app. Refuses a database that lacks
    some of this code's migrations: its archive would name a schema no version has."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    missing = sorted(
        f"{app}.{name}"
        for app, name in loader.graph.leaf_nodes()
        if (app, name) not in loader.applied_migrations
    )
    if missing:
        raise BackupError(
            f"The database lacks migrations of this version ({', '.join(missing[:5])}"
            f"{', …' if len(missing) > 5 else ''}): run `manage.py migrate` first."
        )
    latest: dict[str, str] = {}
    for app, name in loader.applied_migrations:
        latest[app] = max(name, latest.get(app, ""))
    return latest


# --- Empty or not ---------------------------------------------------------------------------


def tables_with_rows() -> list[str]:
    """Tables of the installed models that hold a row (besides what `migrate` writes)."""
    from django.apps import apps

    existing = set(connection.introspection.table_names())
    found: list[str] = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            table = model._meta.db_table
            if table in MIGRATE_WRITES or table not in existing or table in found:
                continue
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")  # noqa: S608
            if cursor.fetchone() is not None:
                found.append(table)
    return sorted(found)


# --- PostgreSQL tools -----------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """pg_dump or pg_restore: from CONVAI_ADMIN_PG_BIN_DIR when set (only there), else PATH,
    else the newest /usr/lib/postgresql/<major>/bin (Debian's layout)."""
    configured = getattr(settings, "BACKUP_PG_BIN_DIR", "")
    if configured:
        candidate = Path(configured) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise BackupError(
            f"{name} is not in CONVAI_ADMIN_PG_BIN_DIR ({configured}): point it at the "
            "PostgreSQL client's bin directory, or unset it to search PATH."
        )
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if versions:
        return versions[-1]
    raise BackupError(
        f"{name} was not found (PATH, /usr/lib/postgresql/*/bin). Install the PostgreSQL client "
        "of the server's major version (Debian: postgresql-client) or set CONVAI_ADMIN_PG_BIN_DIR."
    )


def _pg_command(tool: str, extra: list[str]) -> tuple[list[str], dict[str, str]]:
    db: dict[str, Any] = connection.settings_dict
    args = [pg_tool(tool), "--no-password"]
    for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if db.get(key):
            args += [flag, str(db[key])]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return [*args, *extra, "--dbname", str(db["NAME"])], env


def _run(tool: str, extra: list[str]) -> None:
    command, env = _pg_command(tool, extra)
    try:
        result = subprocess.run(  # noqa: S603 (our own tool, arguments from settings)
            command, env=env, capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise BackupError(f"{tool} could not run: {error.strerror}.") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()][-5:]
        raise BackupError(f"{tool} failed (exit {result.returncode}): " + " / ".join(lines))


# --- Dump and restore -----------------------------------------------------------------------


def dump(destination: Path) -> None:
    """Write a consistent copy of the database to `destination`."""
    if vendor() == "sqlite":
        connection.ensure_connection()
        target = sqlite3.connect(destination)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
    else:
        _run("pg_dump", ["--format=custom", "--no-owner", "--no-acl", "--file", str(destination)])


def restore(source: Path) -> None:
    """Replace the database's content with the dump at `source` (all or nothing)."""
    if vendor() == "sqlite":
        connection.ensure_connection()
        dump_file = sqlite3.connect(source)
        try:
            dump_file.backup(connection.connection)
        finally:
            dump_file.close()
    else:
        connection.close()  # pg_restore drops and recreates tables: hold nothing open
        _run(
            "pg_restore",
            [
                "--single-transaction",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-acl",
                str(source),
            ],
        )
