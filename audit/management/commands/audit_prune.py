"""Delete audit events older than a date, in batches, leaving a signed anchor per chain so
what remains still verifies; the prune itself is an audit event in each chain it touched."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from audit.chain import all_scopes
from audit.context import audit_context
from audit.models import AuditEvent
from audit.prune import PruneRefused, prune_scope
from audit.services import record


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--before {text!r} is not a date (YYYY-MM-DD) or datetime.")
        moment = datetime.combine(day, time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Delete audit events created before --before (in batches), keeping the chains verifiable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="YYYY-MM-DD or an ISO datetime (UTC).")
        parser.add_argument("--batch", type=int, default=5000)
        parser.add_argument(
            "--force", action="store_true", help="Prune even a chain that does not verify."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        before = _moment(options["before"])
        team_model = AuditEvent._meta.get_field("team").related_model
        assert team_model is not None and not isinstance(team_model, str)
        total = 0
        with audit_context(origin="command audit_prune"):
            for scope in all_scopes():
                try:
                    result = prune_scope(
                        scope, before, batch=options["batch"], force=options["force"]
                    )
                except PruneRefused as error:
                    raise CommandError(str(error)) from None
                if not result.deleted:
                    continue
                total += result.deleted
                team = None
                if scope.startswith("team:"):
                    team = team_model._default_manager.filter(pk=scope.split(":", 1)[1]).first()
                record(
                    "audit.pruned",
                    team=team,  # type: ignore[arg-type]
                    target_type="audit",
                    target_label=scope,
                    details={
                        "before": before.isoformat(),
                        "through_seq": result.through_seq,
                        "deleted": result.deleted,
                    },
                )
                self.stdout.write(
                    f"{scope}: deleted {result.deleted} event(s) through seq {result.through_seq}"
                )
        self.stdout.write(self.style.SUCCESS(f"Pruned {total} event(s) created before {before}."))
