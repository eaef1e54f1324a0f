"""deploy/entrypoint.sh, the one entrypoint of `make serve` and the container, started for
real (no container runtime here): the migrate role on an empty PostgreSQL database, then the
whole service (gunicorn + workers + scheduler) answering /healthz and /readyz on loopback and
stopping together on SIGTERM; SQLite and unknown roles refused."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.support.manage import PROD_ENV, ROOT

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the service runs on PostgreSQL only"
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CONVAI_", "DATABASE_URL", "WEB_", "WORKERS"))
    }
    return {
        **base,
        **PROD_ENV,
        "PYTHON": sys.executable,
        "CONVAI_ADMIN_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def _role(tmp_path: Path, role: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one role of the entrypoint to its end."""
    return subprocess.run(
        [str(ENTRYPOINT), role],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _until(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the state"
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> int | None:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        client.request("GET", path, headers={"Host": "admin.example.com"})
        return client.getresponse().status
    except OSError:
        return None
    finally:
        client.close()


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database of its own beside the test database, dropped afterwards."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_deploy"
    server = f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/postgres"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@needs_postgresql
@pytest.mark.django_db
def test_migrate_then_the_whole_service_answers_and_stops_together(
    tmp_path: Path, empty_database: str
) -> None:
    migrate = _role(tmp_path, "migrate", DATABASE_URL=empty_database)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert (tmp_path / "var" / "static" / "staticfiles.json").exists()  # collected, hashed
    with psycopg.connect(empty_database) as db:
        applied = db.execute("SELECT count(*) FROM django_migrations").fetchone()
    assert applied is not None and applied[0] > 0

    port = _free_port()
    log = tmp_path / "service.log"
    with log.open("w") as out:
        service = subprocess.Popen(
            [str(ENTRYPOINT), "all"],
            env=_env(
                tmp_path,
                DATABASE_URL=empty_database,
                WEB_BIND=f"127.0.0.1:{port}",
                WEB_WORKERS="1",
                WORKERS="2",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _until(lambda: _get(port, "/healthz") == 200)
        _until(lambda: _get(port, "/readyz") == 200)  # a worker's heartbeat is in

        def both_workers_beat() -> bool:
            with psycopg.connect(empty_database) as db:
                return db.execute("SELECT count(*) FROM jobs_workerheartbeat").fetchone() == (2,)

        _until(both_workers_beat)
        assert _get(port, "/accounts/login/?next=/secret-token-123") == 301  # https only
    finally:
        service.send_signal(signal.SIGTERM)
        status = service.wait(timeout=60)
    text = log.read_text()
    assert status == 0, text
    # Everything it started stopped with it, cleanly: the workers removed their heartbeat.
    with pytest.raises(ProcessLookupError):
        os.killpg(service.pid, 0)
    with psycopg.connect(empty_database) as db:
        assert db.execute("SELECT count(*) FROM jobs_workerheartbeat").fetchone() == (0,)
    # The access log names the path, never the query string.
    assert '"GET /readyz HTTP/1.1" 200' in text and "/accounts/login/" in text
    assert "secret-token-123" not in text


def test_sqlite_is_refused_unless_allowed(tmp_path: Path) -> None:
    result = _role(tmp_path, "web")
    assert result.returncode == 64
    assert "DATABASE_URL must name a PostgreSQL database" in result.stderr


def test_an_unknown_role_is_refused(tmp_path: Path) -> None:
    result = _role(tmp_path, "webserver", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert result.returncode == 64 and "unknown role 'webserver'" in result.stderr


def test_the_sqlite_escape_hatch_runs_the_migrate_role(tmp_path: Path) -> None:
    result = _role(tmp_path, "migrate", CONVAI_ADMIN_ALLOW_SQLITE="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running on SQLite" in result.stderr
    assert (tmp_path / "var" / "db.sqlite3").stat().st_size > 0
