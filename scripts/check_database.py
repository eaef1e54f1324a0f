"""Run by `make run` before `migrate`: a database made before the accounts → teams/keys split
(one app, `accounts`, held teams and keys) cannot be migrated to the new layout, and
`migrate` would fail with an obscure "table already exists" or "no such table". Say so in one
line, with what to do, and exit 1. A fresh or current database passes silently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def predates_split(connection: Any) -> bool:
    tables = set(connection.introspection.table_names())
    if "accounts_team" in tables or "accounts_apikey" in tables:
        return True
    if "django_migrations" not in tables:
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT app FROM django_migrations WHERE app IN (%s, %s)",
            ["accounts", "teams"],
        )
        apps = {row[0] for row in cursor.fetchall()}
    return "accounts" in apps and "teams" not in apps


def how_to_start_fresh(settings_database: dict[str, object]) -> str:
    if settings_database["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(str(settings_database["NAME"])).resolve()
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        return f"rm {shown} && make run"
    return "point DATABASE_URL at an empty database and run `make run` again"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "convai_admin.settings")
    import django

    django.setup()
    from django.db import connection

    if predates_split(connection):
        print(
            "This database predates the teams/keys split; start fresh: "
            + how_to_start_fresh(connection.settings_dict),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
