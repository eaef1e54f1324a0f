"""Health endpoints for load balancers, container runtimes and monitoring, unauthenticated,
cheap, JSON, and never saying more than "ok" or what is wrong in a few words (no secret, no
host name, no version).

- `/healthz` (liveness): the process answers and the database does `SELECT 1`.
- `/readyz` (readiness): also no unapplied migrations, plus each check the apps registered
  (`register_readiness` in their AppConfig.ready: keys/ the encryption keyring, audit/ the
  audit chain keys, jobs/ a live task worker). The project package imports none of them.

200 when every check passes, 503 otherwise, with {"status": "ok"|"fail", "checks": {...}}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

# A readiness check returns None when all is well, else a short reason a page may show.
Check = Callable[[], str | None]
_readiness: dict[str, Check] = {}
_migrated = False


def register_readiness(name: str, check: Check) -> None:
    _readiness[name] = check


def readiness_checks() -> dict[str, Check]:
    return dict(_readiness)


def database() -> str | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


def migrations() -> str | None:
    """Unapplied migrations: the code is newer than the schema (run `manage.py migrate`).
    Once all are applied the answer is kept for the life of the process (they cannot be
    unapplied under a running server without a restart), so a probe costs one query."""
    global _migrated
    if _migrated:
        return None
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return f"{len(pending)} unapplied migration(s)"
    _migrated = True
    return None


def forget_migration_state() -> None:
    """For tests that unapply a migration."""
    global _migrated
    _migrated = False


def _run(checks: dict[str, Check]) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in checks.items():
        if results.get("database", "ok") != "ok":
            results[name] = "not checked"  # nothing else can answer without the database
            continue
        try:
            reason = check()
        except Exception:  # the details go to the log, never to the answer
            logger.warning("health check %s failed", name, exc_info=True)
            reason = "error"
        results[name] = "ok" if reason is None else reason
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": results}, status=200 if healthy else 503
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return _run({"database": database})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    return _run({"database": database, "migrations": migrations, **readiness_checks()})
