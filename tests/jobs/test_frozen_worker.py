"""A frozen worker does not block its team: on PostgreSQL no session waits long on a lock
(lock_timeout) or keeps a transaction open while idle (idle_in_transaction_session_timeout),
and a request that met a held lock answers "busy, try again" (503), never a 500."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils.html import escape

from audit.models import AuditChain, AuditEvent
from audit.services import chain_scope, record
from characters.bulk import syncing
from convai_admin.dbbusy import MESSAGE as RAW_MESSAGE
from jobs import running
from jobs import services as jobs
from jobs.models import Job
from teams.models import Membership

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGE = escape(RAW_MESSAGE)

ROOT = Path(__file__).resolve().parents[2]
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="lock_timeout and idle_in_transaction_session_timeout are PostgreSQL settings; "
    "SQLite has one writer and its own busy timeout",
)

# The child: a worker that takes the team's audit chain head (as a batch of results does),
# then is stopped (SIGSTOP) inside its transaction.
FROZEN = """
import os, signal, sys, django
django.setup()
from django.db import transaction
from audit.models import AuditChain
with transaction.atomic():
    AuditChain.objects.select_for_update().get(scope=sys.argv[1])
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
    AuditChain.objects.filter(scope=sys.argv[1]).exists()
print("resumed", flush=True)
"""


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _stopped(pid: int) -> bool:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0] == "T"


def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the state"
        time.sleep(0.05)


@pytest.fixture
def frozen_worker(editor: Membership) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the team's audit chain row, stopped; its server session ends
    after 1 s idle in transaction (the setting, from the environment, as in production)."""
    record("team.renamed", actor=editor.user, team=editor.team)  # the chain head exists
    scope = chain_scope(editor.team)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "1000",
        "DJANGO_SETTINGS_MODULE": "convai_admin.settings",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", FROZEN, scope], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        _until(lambda: _stopped(child.pid))
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
        child.wait(timeout=10)


@postgres_only
def test_the_settings_set_the_timeouts_on_every_connection() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting::int FROM pg_settings WHERE name IN "
            "('lock_timeout', 'idle_in_transaction_session_timeout')"
        )
        values = dict(cursor.fetchall())
    assert values == {
        "lock_timeout": django_settings.DB_LOCK_TIMEOUT_MS,
        "idle_in_transaction_session_timeout": django_settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    }
    assert values["lock_timeout"] == 5000  # the documented defaults
    assert values["idle_in_transaction_session_timeout"] == 60000


@postgres_only
def test_a_frozen_worker_answers_busy_then_frees_the_team(
    editor: Membership,
    frozen_worker: subprocess.Popen[str],
    login: Callable[[Membership], Any],
) -> None:
    job = Job.objects.create(
        team=editor.team,
        kind=syncing.SYNC_ALL,
        scope=jobs.sync_scope(editor.team_id),
        created_by=editor.user,
        state=Job.State.INTERRUPTED,
    )
    client = login(editor)
    url = reverse("jobs:job-cancel", args=[editor.team.slug, job.pk])
    with connection.cursor() as cursor:  # faster than the 5 s of the web's setting
        cursor.execute("SET lock_timeout = '300ms'")
    events = AuditEvent.objects.count()

    started = time.monotonic()
    busy = client.post(url)
    assert time.monotonic() - started < 5
    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert MESSAGE in busy.content.decode()
    job.refresh_from_db()
    assert job.state == Job.State.INTERRUPTED and AuditEvent.objects.count() == events

    # The stopped worker's transaction is ended by the server (idle in transaction): the same
    # request then works, without anyone touching the worker.
    answers: list[int] = []

    def cancelled() -> bool:
        answers.append(client.post(url).status_code)
        return answers[-1] == 302

    _until(cancelled)
    assert set(answers) <= {302, 503}
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    # Woken up, the worker finds its transaction gone: an error in the worker, no deadlock
    # and no 500 on the web side.
    frozen_worker.send_signal(signal.SIGCONT)
    assert frozen_worker.wait(timeout=20) != 0
    assert AuditChain.objects.filter(scope=chain_scope(editor.team)).exists()


def test_a_lock_timeout_or_a_deadlock_answers_busy_not_500(
    editor: Membership, login: Callable[[Membership], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On every database: whatever raised it (SQLite says "database is locked")."""
    job = Job.objects.create(
        team=editor.team,
        kind=syncing.SYNC_ALL,
        scope=jobs.sync_scope(editor.team_id),
        created_by=editor.user,
        state=Job.State.INTERRUPTED,
    )

    class Deadlock(Exception):
        sqlstate = "40P01"

    def deadlocked(**kwargs: Any) -> Job:
        raise OperationalError("deadlock detected") from Deadlock()

    def locked(**kwargs: Any) -> Job:
        raise OperationalError("database is locked")

    client = login(editor)
    url = reverse("jobs:job-cancel", args=[editor.team.slug, job.pk])
    for failure in (deadlocked, locked):
        monkeypatch.setattr(jobs, "cancel_job", failure)
        page = client.post(url)
        assert page.status_code == 503 and MESSAGE in page.content.decode()
        assert "<html" in page.content.decode()
        fragment = client.post(url, headers={"HX-Request": "true"})
        assert fragment.status_code == 503 and fragment["HX-Retarget"] == "#messages"
        assert MESSAGE in fragment.content.decode() and "<html" not in fragment.content.decode()

    def other(**kwargs: Any) -> Job:
        raise OperationalError("no such table: jobs_job")

    monkeypatch.setattr(jobs, "cancel_job", other)
    client.raise_request_exception = False
    assert client.post(url).status_code == 500


def test_a_job_that_meets_a_held_lock_takes_a_turn_later_instead_of_failing(
    editor: Membership, create: Callable[..., Any]
) -> None:
    from characters.bulk import syncing

    create(name="One")
    job = syncing.start_sync_all(actor=editor)
    calls: list[int] = []

    def body(run: running.JobRun) -> None:
        calls.append(run.number)
        if run.number == 1:
            raise OperationalError("canceling statement due to lock timeout") from type(
                "LockNotAvailable", (Exception,), {"sqlstate": "55P03"}
            )()
        syncing._sync_body(run)

    assert running.run_job(job.pk, body, task=syncing.sync_all) == "requeued"
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED and job.done == 0
    assert running.run_job(job.pk, body, task=syncing.sync_all) == Job.State.DONE
    job.refresh_from_db()
    assert (calls, job.state, job.done) == ([1, 2], Job.State.DONE, 1)
