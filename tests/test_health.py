"""/healthz and /readyz (convai_admin/health.py): unauthenticated, JSON, cheap, never a secret;
readiness fails for an unapplied migration, a dead worker, a missing keyring or audit key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.utils import OperationalError
from django.test import Client
from django.utils import timezone

from convai_admin import health
from jobs.models import WorkerHeartbeat
from teams.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _migration_state() -> Iterator[None]:
    health.forget_migration_state()
    yield
    health.forget_migration_state()


@pytest.fixture
def live_worker() -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(worker_id="w1", host="h", pid=1)


def _get(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    response = client.get(path)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_healthz_answers_ok_with_one_query_and_no_session(
    client: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert not response.cookies  # no session, no CSRF cookie: a probe leaves nothing behind


def test_readyz_answers_ok_when_everything_is_ready(
    client: Client, live_worker: WorkerHeartbeat, django_assert_num_queries: Any
) -> None:
    status, body = _get(client, "/readyz")
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "keyring": "ok",
            "audit_keys": "ok",
            "workers": "ok",
        },
    }
    # Once migrated, a probe costs SELECT 1 and the worker lookup.
    with django_assert_num_queries(2):
        assert client.get("/readyz").status_code == 200


def test_the_apps_register_their_readiness_checks() -> None:
    assert set(health.readiness_checks()) == {"keyring", "audit_keys", "workers"}


def test_a_signed_in_member_gets_the_same_answer(
    client: Client, make_member: Any, live_worker: WorkerHeartbeat
) -> None:
    member: Membership = make_member()
    client.force_login(member.user)
    assert _get(client, "/readyz")[0] == 200
    assert _get(client, "/healthz") == (200, {"status": "ok", "checks": {"database": "ok"}})


def test_only_get_is_answered(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_readyz_fails_for_an_unapplied_migration(
    client: Client, live_worker: WorkerHeartbeat
) -> None:
    # The migration's record goes (rolled back with the test): the code is ahead of the schema.
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = %s AND name = %s",
            ["jobs", "0005_worker_heartbeat"],
        )
    status, body = _get(client, "/readyz")
    assert status == 503 and body["status"] == "fail"
    assert body["checks"]["migrations"] == "1 unapplied migration(s)"
    assert body["checks"]["workers"] == "ok"


def test_readyz_fails_without_a_live_worker(client: Client, settings: Any) -> None:
    status, body = _get(client, "/readyz")
    assert status == 503
    assert body["checks"]["workers"] == "no task worker seen in the last 60 s"
    # A worker that stopped writing its heartbeat is dead, however recent its start.
    WorkerHeartbeat.objects.create(
        worker_id="w-dead",
        host="h",
        pid=1,
        last_seen=timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS + 1),
    )
    assert _get(client, "/readyz")[0] == 503
    WorkerHeartbeat.objects.create(worker_id="w-live", host="h", pid=2)
    assert _get(client, "/readyz")[0] == 200


def test_workers_are_not_checked_on_a_distributed_backend(client: Client, settings: Any) -> None:
    """On RQ (docs/production.md) the workers are RQ's: its own tools watch them."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    status, body = _get(client, "/readyz")
    assert status == 200 and body["checks"]["workers"] == "ok"


def test_readyz_fails_without_the_encryption_keyring(
    client: Client, settings: Any, live_worker: WorkerHeartbeat
) -> None:
    settings.ENCRYPTION_KEYS = ""
    status, body = _get(client, "/readyz")
    assert status == 503
    assert body["checks"]["keyring"] == "encryption keyring missing or malformed"
    settings.ENCRYPTION_KEYS = "k1:not-base64!"
    assert _get(client, "/readyz")[1]["checks"]["keyring"] != "ok"


def test_readyz_fails_without_audit_keys_in_production(
    client: Client, settings: Any, live_worker: WorkerHeartbeat
) -> None:
    settings.AUDIT_KEYS = ""
    settings.DEBUG = False
    status, body = _get(client, "/readyz")
    assert status == 503
    assert body["checks"]["audit_keys"] == "audit keys missing or malformed"


def test_a_database_failure_answers_503_without_its_message(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down() -> None:
        raise OperationalError('connection to server at "db.internal" failed: password=s3cret')

    monkeypatch.setattr(health, "database", down)
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 503
        assert b"s3cret" not in response.content and b"db.internal" not in response.content
    assert client.get("/readyz").json()["checks"] == {
        "database": "error",
        "migrations": "not checked",
        "keyring": "not checked",
        "audit_keys": "not checked",
        "workers": "not checked",
    }


def test_the_probes_answer_over_plain_http_when_https_is_enforced(
    client: Client, settings: Any
) -> None:
    """A container's health check speaks to the app server directly, without TLS."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301
