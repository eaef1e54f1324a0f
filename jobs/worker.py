"""The job worker process (`manage.py run_worker`: django-tasks-db's `db_worker`, set up for
our jobs). What a worker process needs is set here once, when it starts, never by the code
that runs a job (which also runs inside tests and, with the immediate backend, web requests).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import QuerySet
from django.utils import timezone

from .models import WorkerHeartbeat
from .queue import on_database_queue

logger = logging.getLogger(__name__)

# Seconds. A job's worker thread gives up the GIL at every database call; with Python's default
# 5 ms switch interval it then waits behind the pool's HTTP threads each time (the "convoy
# effect"), which made the database side, not Convai, the bottleneck of an import (see
# docs/benchmarks.md). A worker process runs one task at a time and does nothing else, so it
# switches threads more often for its whole life.
SWITCH_INTERVAL = 0.0005


def configure_process() -> None:
    """Tune this process for running jobs (called by run_worker as it starts, and by the
    benchmarks that run the worker loop in their own process)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def _cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS)


def live_workers() -> QuerySet[WorkerHeartbeat]:
    """Workers that wrote their heartbeat within WORKER_STALE_SECONDS."""
    return WorkerHeartbeat.objects.filter(last_seen__gte=_cutoff())


def dead_workers() -> QuerySet[WorkerHeartbeat]:
    """Workers whose heartbeat stopped without a clean exit (killed, frozen, machine gone)."""
    return WorkerHeartbeat.objects.filter(last_seen__lt=_cutoff())


def readiness() -> str | None:
    """/readyz: at least one worker is alive, when the tasks run on the database queue (on a
    distributed backend, its workers are that system's to watch: docs/production.md)."""
    if not on_database_queue():
        return None
    if not live_workers().exists():
        return f"no task worker seen in the last {settings.WORKER_STALE_SECONDS} s"
    return None


def beat(worker_id: str) -> None:
    """Write this process's heartbeat row (created on the first beat)."""
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={"last_seen": timezone.now(), "host": socket.gethostname()[:255]},
        create_defaults={
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": timezone.now(),
            "last_seen": timezone.now(),
        },
    )


class Heartbeat:
    """A daemon thread beating every WORKER_HEARTBEAT_SECONDS while the worker loop runs (a
    task holding the loop for minutes still shows its worker alive; a frozen or killed process
    stops beating). `stop()` deletes the row: a worker that ended cleanly is not "dead"."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def start(self) -> None:
        beat(self.worker_id)  # before the first task: readiness sees the worker at once
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            try:
                close_old_connections()
                beat(self.worker_id)
            except Exception:  # a database outage: keep trying, the worker loop will say more
                logger.warning("worker %s: heartbeat not written", self.worker_id, exc_info=True)
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            close_old_connections()
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
        except Exception:
            logger.warning("worker %s: heartbeat row left behind", self.worker_id, exc_info=True)
