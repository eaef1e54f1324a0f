"""Inject faults into the sandbox for demos and manual testing:

    manage.py sandbox_fault set --latency-ms 200 --failure-rate 0.5 [--key-label L]
    manage.py sandbox_fault set --outage | --rate-limit [--retry-after 5] | --malformed
    manage.py sandbox_fault clear [--key-label L | --all]
    manage.py sandbox_fault show

`set` replaces the configuration of its scope (all keys, or the keys with that label)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sandbox.models import SandboxFault
from sandbox.services import clear_faults, set_fault


class Command(BaseCommand):
    help = "Set, clear or show injected faults of the offline Convai sandbox."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        configure = actions.add_parser("set", help="Replace the faults of one scope.")
        configure.add_argument("--key-label", default=None, help="Only keys with this label.")
        configure.add_argument("--latency-ms", type=int, default=0)
        configure.add_argument("--failure-rate", type=float, default=0.0, help="0 to 1: 503s.")
        configure.add_argument("--outage", action="store_true", help="Answer every call 503.")
        configure.add_argument("--rate-limit", action="store_true", help="Answer every call 429.")
        configure.add_argument("--retry-after", type=int, default=1, help="Seconds, with 429.")
        configure.add_argument("--malformed", action="store_true", help="Unreadable 200 bodies.")
        clear = actions.add_parser("clear", help="Remove faults (global scope by default).")
        clear.add_argument("--key-label", default=None)
        clear.add_argument("--all", action="store_true", dest="everything")
        actions.add_parser("show", help="Show the configured faults.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "set":
            try:
                fault = set_fault(
                    key_label=options["key_label"],
                    latency_ms=options["latency_ms"],
                    failure_rate=options["failure_rate"],
                    outage=options["outage"],
                    rate_limit=options["rate_limit"],
                    retry_after=options["retry_after"],
                    malformed=options["malformed"],
                )
            except ValueError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"Faults set for {fault}: {self._describe(fault)}")
        elif action == "clear":
            count = clear_faults(key_label=options["key_label"], everything=options["everything"])
            self.stdout.write(f"Cleared {count} fault configuration(s).")
        else:
            faults = list(SandboxFault.objects.order_by("key_label"))
            if not faults:
                self.stdout.write("No faults configured.")
            for fault in faults:
                self.stdout.write(f"{fault}: {self._describe(fault)}")

    @staticmethod
    def _describe(fault: SandboxFault) -> str:
        parts = [f"latency {fault.latency_ms} ms", f"failure rate {fault.failure_rate:g}"]
        if fault.outage:
            parts.append("outage")
        if fault.rate_limit:
            parts.append(f"rate limit (Retry-After {fault.retry_after} s)")
        if fault.malformed:
            parts.append("malformed bodies")
        return ", ".join(parts)
