"""Queueing a task so that it runs only once the rows it reads are committed.

On the database queue (django-tasks-db, the default) the task row is written in the caller's
transaction: the job (or the periodic claim) and its task commit together, or neither does.
A distributed backend (RQ on Redis, docs/production.md) is outside that transaction: a worker
could take the task before the job row it names exists. There the task is sent when the
transaction commits (and not at all when it rolls back); `then` receives its ID either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db.backend import DatabaseBackend


def on_database_queue(backend: str = DEFAULT_TASK_BACKEND_ALIAS) -> bool:
    """Whether the task backend keeps its queue in our database (django-tasks-db)."""
    return isinstance(task_backends[backend], DatabaseBackend)


def in_transaction(task: Any) -> bool:
    """Whether `task` is queued in our database, in the caller's transaction."""
    return on_database_queue(getattr(task, "backend", DEFAULT_TASK_BACKEND_ALIAS))


def enqueue(task: Any, *args: Any, then: Callable[[str], object] | None = None) -> None:
    """Queue `task(*args)` with the caller's transaction (see above)."""

    def send() -> None:
        result = task.enqueue(*args)
        if then is not None:
            then(str(result.id))

    if in_transaction(task):
        send()
    else:
        transaction.on_commit(send, robust=False)
