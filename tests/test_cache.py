"""The cache is shared by every process (issue 14): the database's by default, made by
`migrate`; Redis when REDIS_URL is set. Nothing a second app server needs stays in one
process's memory."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.manage import PROD_ENV, run_manage

SHOW_CACHE = (
    "from django.conf import settings as s; c = s.CACHES['default'];"
    "print(c['BACKEND'], c['LOCATION'])"
)


def _last_line(result: object) -> str:
    stdout = getattr(result, "stdout", "")
    return stdout.strip().splitlines()[-1] if stdout.strip() else ""


def test_the_default_cache_is_the_database_cache() -> None:
    result = run_manage("shell", "-c", SHOW_CACHE, env={**PROD_ENV, "REDIS_URL": ""})
    assert result.returncode == 0, result.stderr
    assert _last_line(result).split() == [
        "django.core.cache.backends.db.DatabaseCache",
        "convai_admin_cache",
    ]


def test_redis_url_selects_django_s_redis_cache() -> None:
    url = "redis://127.0.0.1:6379/3"
    result = run_manage("shell", "-c", SHOW_CACHE, env={**PROD_ENV, "REDIS_URL": url})
    assert result.returncode == 0, result.stderr
    assert _last_line(result).split() == ["django.core.cache.backends.redis.RedisCache", url]


def test_the_tests_run_on_the_database_cache_too() -> None:
    assert settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")


def _shell(code: str, env: dict[str, str]) -> str:
    result = run_manage("shell", "-c", f"from django.core.cache import cache; {code}", env=env)
    assert result.returncode == 0, result.stderr
    return _last_line(result)


def _set_then_get_in_two_processes(env: dict[str, str]) -> str:
    key = f"convai-admin-test-{uuid.uuid4().hex}"
    _shell(f"cache.set({key!r}, 'shared', 60)", env)
    return _shell(f"print(cache.get({key!r})); cache.delete({key!r})", env)


def test_migrate_makes_the_cache_table_and_a_second_process_reads_what_one_cached(
    tmp_path: Path,
) -> None:
    """A fresh install: `migrate` (as `make run`, `make serve` and CI run it) creates the
    cache table; what one process caches, another (a second app server) reads."""
    env = {**PROD_ENV, "REDIS_URL": "", "CONVAI_ADMIN_VAR_DIR": str(tmp_path)}
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert _set_then_get_in_two_processes(env) == "shared"
    again = run_manage("migrate", "--noinput", env=env)  # nothing to do: no error either
    assert again.returncode == 0, again.stderr


def _redis_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_listening(), reason="no Redis on 127.0.0.1:6379")
def test_with_redis_a_second_process_reads_what_one_cached(tmp_path: Path) -> None:
    env = {
        **PROD_ENV,
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "CONVAI_ADMIN_VAR_DIR": str(tmp_path),
    }
    assert _set_then_get_in_two_processes(env) == "shared"
