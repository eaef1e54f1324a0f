"""Helpers for job tests: remote characters seeded straight into the sandbox, the worker run
in-process (the real django-tasks-db worker loop, batch mode), job shortcuts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker

from jobs.models import Job
from sandbox.models import SandboxCharacter, SandboxKey
from sandbox.services import hash_key
from tests.support.characters import Key


def seed_remote(key: Key, count: int, prefix: str = "Remote") -> list[SandboxCharacter]:
    """`count` characters owned by the key's sandbox account, in name order."""
    account = SandboxKey.objects.get(key_hash=hash_key(key.raw)).account
    rows = [
        SandboxCharacter(
            owner=account,
            character_name=f"{prefix} {number:03d}",
            voice_type="MALE",
            backstory=f"{prefix} {number} backstory.\nSecond line.",
            actions=["Wave"],
            language_codes=["en-US"],
        )
        for number in range(1, count + 1)
    ]
    SandboxCharacter.objects.bulk_create(rows)
    return list(
        SandboxCharacter.objects.filter(owner=account, character_name__startswith=prefix).order_by(
            "character_name"
        )
    )


def run_worker(**options: Any) -> None:
    """The django-tasks-db worker, in this process and thread, until the queue is empty: the
    same code path `manage.py db_worker` runs in `make run`."""
    Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=options.get("max_tasks"),
        worker_id="test-worker",
        excluded_queue_names=[],
    ).run()


def fresh(job: Job) -> Job:
    job.refresh_from_db()
    return job


ROOT = Path(__file__).resolve().parents[2]
# Tests whose child processes (`manage.py run_worker`...) share the test database.
needs_shared_database = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a child process cannot share SQLite's in-memory test database",
)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a `manage.py` child process sharing the test database (PostgreSQL)."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "convai_admin.settings",
        **extra,
    }


def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for a state another process brings about (polling; fails after `seconds`)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the state"
        time.sleep(0.05)
