"""Helpers for job tests: remote characters seeded straight into the sandbox, the worker run
in-process (the real django-tasks-db worker loop, batch mode), job shortcuts."""

from __future__ import annotations

from typing import Any

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
