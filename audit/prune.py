"""Deleting old events — the one sanctioned way, leaving a signed anchor so the rest verifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from .chain import Head, verify_scope, write_checkpoint
from .models import AuditChain, AuditEvent, CheckpointKind

PRUNE_SETTING = "convai_admin.audit_prune"


class PruneRefused(Exception):
    pass


@dataclass
class Pruned:
    scope: str
    through_seq: int
    deleted: int


def allow_deletes_in_this_transaction() -> None:
    """The PostgreSQL trigger lets DELETE through only with this transaction-local setting."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', true)", [PRUNE_SETTING])


def prune_scope(scope: str, before: datetime, *, batch: int = 5000, force: bool = False) -> Pruned:
    """Delete the oldest events of one chain created before `before` (a prefix of the chain,
    so what remains is contiguous), in batches; the anchor is written first."""
    report = verify_scope(scope)
    if not report.intact and not force:
        raise PruneRefused(
            f"{scope} does not verify ({report.problems[0]}); pruning would destroy the "
            "evidence. Investigate, or pass --force."
        )
    first_kept = (
        AuditEvent.objects.filter(chain=scope, created_at__gte=before)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    through = (first_kept - 1) if first_kept is not None else report.last_seq
    if through <= report.pruned_through:
        return Pruned(scope, report.pruned_through, 0)
    with transaction.atomic():
        AuditChain.objects.select_for_update().filter(scope=scope).first()
        last = AuditEvent.objects.filter(chain=scope, seq=through).values_list("hash", flat=True)
        write_checkpoint([Head(scope, through, last.get())], kind=CheckpointKind.PRUNE)
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    deleted = 0
    while True:
        ids = list(
            AuditEvent.objects.filter(chain=scope, seq__lte=through)
            .order_by("seq")
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            allow_deletes_in_this_transaction()
            with connection.cursor() as cursor:
                placeholders = ",".join(["%s"] * len(ids))
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({placeholders})", ids)  # noqa: S608
                deleted += cursor.rowcount
    return Pruned(scope, through, deleted)
