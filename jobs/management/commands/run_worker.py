"""`manage.py run_worker`: the django-tasks-db worker (`db_worker`, same options), in a process
set up for jobs first (jobs/worker.py), writing its heartbeat (jobs.models.WorkerHeartbeat)
while it runs. `make run` and `make serve` (deploy/entrypoint.sh) start WORKERS of them."""

from __future__ import annotations

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from jobs.worker import Heartbeat, configure_process


class Command(DbWorkerCommand):
    help = "Run the job worker: django-tasks-db's db_worker in a process tuned for jobs."

    def handle(self, *args: Any, **options: Any) -> None:
        configure_process()
        heartbeat = Heartbeat(options["worker_id"])
        heartbeat.start()
        try:
            super().handle(*args, **options)
        finally:
            heartbeat.stop()
