"""`manage.py run_scheduler`: every SCHEDULER_TICK_SECONDS, queue the periodic functions that
are due (jobs.periodic); the workers run them. `make run` starts it beside the workers.

SIGTERM or SIGINT stops it at once (between ticks) or after the tick in hand. Several
schedulers may run: each period of each function is claimed by one of them.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from jobs import periodic


class Command(BaseCommand):
    help = "Queue the periodic functions that are due, every tick, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tick", type=float, default=None, help="Seconds between ticks (default: setting)."
        )
        parser.add_argument("--once", action="store_true", help="One tick, then exit.")
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Run the due functions in this process instead of queueing them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tick = options["tick"] if options["tick"] is not None else periodic.tick_seconds()
        stop = threading.Event()

        def shutdown(signum: int, frame: FrameType | None) -> None:
            stop.set()

        if not options["once"]:
            signal.signal(signal.SIGTERM, shutdown)
            signal.signal(signal.SIGINT, shutdown)
        names = ", ".join(sorted(periodic.registered())) or "none"
        self.stdout.write(f"Scheduler: tick {tick:g} s; periodic functions: {names}")
        while not stop.is_set():
            close_old_connections()
            for name in periodic.run_due(inline=options["inline"]):
                self.stdout.write(f"Scheduler: {name} is due")
            if options["once"]:
                break
            stop.wait(tick)
        self.stdout.write("Scheduler stopped.")
