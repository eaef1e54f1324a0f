"""CONVAI_ADMIN_TASK_BACKEND chooses where tasks wait: the database (default) or RQ on Redis;
anything else stops the start-up with a message naming the two."""

from __future__ import annotations

from tests.support.manage import PROD_ENV, run_manage

SHOW = (
    "from django.conf import settings as s; "
    "q = getattr(s, 'RQ_QUEUES', {}).get('default', {}); "
    "print(s.TASKS['default']['BACKEND'], q.get('URL'))"
)


def _shown(env: dict[str, str]) -> str:
    result = run_manage("shell", "-c", SHOW, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_database_queue_is_the_default() -> None:
    assert _shown(PROD_ENV) == "django_tasks_db.DatabaseBackend None"


def test_rq_takes_its_redis_from_the_environment_and_passes_the_checks() -> None:
    env = {**PROD_ENV, "CONVAI_ADMIN_TASK_BACKEND": "rq", "REDIS_URL": "redis://127.0.0.1:6379/3"}
    assert _shown(env) == "django_tasks_rq.RQBackend redis://127.0.0.1:6379/3"
    own = {**env, "RQ_REDIS_URL": "redis://127.0.0.1:6379/4"}
    assert _shown(own) == "django_tasks_rq.RQBackend redis://127.0.0.1:6379/4"
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_backend_is_refused() -> None:
    result = run_manage("check", env={**PROD_ENV, "CONVAI_ADMIN_TASK_BACKEND": "celery"})
    assert result.returncode != 0
    assert "CONVAI_ADMIN_TASK_BACKEND must be 'database' (the default) or 'rq'" in result.stderr
