"""Verify the audit log: every seal, every link, and against checkpoints kept elsewhere.

manage.py audit_verify                          # the database alone; prints the heads
manage.py audit_verify --checkpoint app.log     # also against logged checkpoints
grep AUDIT-CHECKPOINT app.log | manage.py audit_verify --checkpoint -
manage.py audit_verify --export audit.jsonl     # re-verify an export offline
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.chain import (
    ParsedCheckpoint,
    checkpoint_line,
    current_heads,
    parse_checkpoint_lines,
    verify_all,
    verify_export_lines,
)


class Command(BaseCommand):
    help = (
        "Verify the audit log's keyed hash chains (and, with --checkpoint, that nothing before "
        "a checkpoint was removed or rewritten); print the current heads. Exits non-zero when "
        "a chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="A file of checkpoint lines (a server log will do); '-' reads standard input. "
            "Repeatable.",
        )
        parser.add_argument(
            "--export", metavar="FILE", help="Re-verify a JSON Lines export instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["export"]:
            self._verify_export(options["export"])
            return
        checkpoints: list[ParsedCheckpoint] = []
        for name in options["checkpoint"]:
            checkpoints += self._read(name)
        for cp in checkpoints:
            if not cp.genuine and cp.kind != "head":
                self.stderr.write(f"{cp.source}: checkpoint line's MAC does not verify (forged?)")
        reports = verify_all(checkpoints)
        broken = [r for r in reports if not r.intact]
        self.stdout.write("Chain heads (scope seq hash):")
        for head in current_heads():
            self.stdout.write(f"{head.scope} {head.seq} {head.hash}")
        for report in reports:
            pruned = (
                f", pruned through seq {report.pruned_through}" if report.pruned_through else ""
            )
            self.stdout.write(
                f"  {report.scope}: {report.events} event(s), seq {report.first_seq}-"
                f"{report.last_seq}{pruned}, {report.checkpoints_matched} checkpoint(s) matched"
                f" — {'intact' if report.intact else 'BROKEN'}"
            )
            for problem in report.problems:
                self.stderr.write(problem)
        heads = current_heads()
        if heads:
            self.stdout.write("Keep this line elsewhere to check against later:")
            self.stdout.write(checkpoint_line(heads, kind="manual", at=timezone.now()))
        forged = [cp for cp in checkpoints if not cp.genuine and cp.kind != "head"]
        if broken or forged:
            raise CommandError(
                f"{len(broken)} of {len(reports)} audit chain(s) are broken"
                + (f", {len(forged)} checkpoint line(s) not genuine" if forged else "")
                + " (see above)."
            )
        self.stdout.write(self.style.SUCCESS(f"All {len(reports)} audit chain(s) are intact."))

    def _read(self, name: str) -> list[ParsedCheckpoint]:
        try:
            if name == "-":
                return parse_checkpoint_lines(sys.stdin, source="stdin")
            with Path(name).open(encoding="utf-8", errors="replace") as handle:
                return parse_checkpoint_lines(handle, source=name)
        except OSError as error:
            raise CommandError(f"Cannot read {name}: {error.strerror}") from None
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _verify_export(self, name: str) -> None:
        try:
            with Path(name).open(encoding="utf-8") as handle:
                count, problems = verify_export_lines(handle)
        except OSError as error:
            raise CommandError(f"Cannot read {name}: {error.strerror}") from None
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} problem(s) in {count} exported event(s).")
        self.stdout.write(self.style.SUCCESS(f"All {count} exported event(s) verify."))
