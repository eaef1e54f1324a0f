"""The project package as an app: what every process needs once Django is set up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.management import call_command
from django.db.models.signals import post_migrate


class ConvaiAdminConfig(AppConfig):
    name = "convai_admin"
    verbose_name = "Convai Admin"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the project's system checks)

        secure_var_dir(Path(settings.VAR_DIR), settings.DATABASES["default"])
        # Once per migrate: on the signal of the sessions app, the other table of shared
        # state (this package has no models, so it gets no post_migrate of its own).
        post_migrate.connect(create_cache_table, sender=apps.get_app_config("sessions"))


def create_cache_table(using: str = "default", **kwargs: Any) -> None:
    """The database cache's table (settings.CACHES), made by every `migrate` (a fresh clone,
    `make run`, a deploy, CI; the test runner makes it too): createcachetable does nothing
    when it exists, and nothing for a Redis cache."""
    call_command("createcachetable", database=using, verbosity=0)


def secure_var_dir(var_dir: Path, database: Mapping[str, Any]) -> None:
    """var/ holds the SQLite database (every team's data, the audit log, encrypted keys), the
    collected static files and bundle uploads: owner-only, like .env (0700; an older,
    world-readable one is tightened). Runs before any database connection opens.

    The SQLite file is created here, empty and 0600, rather than by SQLite under the process
    umask: SQLite gives the -journal/-wal/-shm files it makes later the database file's
    permissions, so no process-wide umask is needed. An existing file is tightened."""
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(var_dir, 0o700)
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    path = Path(str(database["NAME"]))
    if str(path) == ":memory:" or str(path).startswith("file:"):
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _tighten(path, 0o600)


def _tighten(path: Path, mode: int) -> None:
    """Take group and other permissions off a path we own (never someone else's)."""
    status = path.stat()
    if status.st_uid == os.getuid() and status.st_mode & 0o077:
        path.chmod(mode)
