"""The job worker process (`manage.py run_worker`: django-tasks-db's `db_worker`, set up for
our jobs). What a worker process needs is set here once, when it starts, never by the code
that runs a job (which also runs inside tests and, with the immediate backend, web requests).
"""

from __future__ import annotations

import sys

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
