"""`record` is the only way an audit event is written.

Each event's hash covers its content and the previous event's hash in the same chain (one
chain per team, plus one for events outside any team), so editing or deleting a past row
breaks every later hash — `verify_chain` finds it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .chain import GENESIS, ChainReport, Head, seal, verify_chain, verify_scope, write_checkpoint
from .context import current
from .models import AuditChain, AuditEvent, CheckpointKind, Outcome

if TYPE_CHECKING:
    from accounts.models import User
    from teams.models import Team

__all__ = ["GENESIS", "chain_scope", "record", "seal_chain", "verify_chain"]
# Detail keys that must never carry a value into the log, whatever a caller passes.
_SECRET_KEYS = {
    "password",
    "password1",
    "password2",
    "api_key",
    "key",
    "raw_key",
    "secret",
    "token",
    "ciphertext",
    "convai-api-key",
}


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k): ("[redacted]" if str(k).lower() in _SECRET_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def chain_scope(team: Team | None) -> str:
    return f"team:{team.pk}" if team is not None else "global"


def _normal_ip(value: str | None) -> str | None:
    """The spelling PostgreSQL's inet returns, so the seal survives the round trip."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def record(
    action: str,
    *,
    actor: User | None = None,
    team: Team | None = None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    outcome: str = Outcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one event; where it came from (IP, user agent, request ID, origin) is read from
    the audit context (audit.context), never from an argument.

    Inside the caller's transaction the event commits or rolls back with the change it
    describes (a success and its event: both or neither). A failure or refusal is recorded
    after the rollback, so that it stays."""
    label = actor_label
    if label is None:
        label = actor.display_name if actor is not None else ""
    context = current()
    event = AuditEvent(
        team=team,
        actor=actor,
        actor_label=label[:200],
        ip_address=_normal_ip(context.ip_address),
        user_agent=context.user_agent[:400],
        request_id=context.request_id[:64],
        origin=context.origin[:100],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        target_label=target_label[:200],
        outcome=outcome,
        details=_scrub(dict(details or {})),
        chain=chain_scope(team),
    )
    # Round-trip details through JSON so the seal covers what the database will return.
    event.details = json.loads(json.dumps(event.details, default=str))
    # No savepoint inside the caller's transaction: the event is part of the change it
    # describes, so a failure here fails the caller's transaction as a whole (and a busy path
    # such as the token broker's mint saves the SAVEPOINT/RELEASE round trips).
    with transaction.atomic(savepoint=False):
        locked = AuditChain.objects.select_for_update()
        head = locked.filter(scope=event.chain).first()
        if head is None:  # a chain's first event (a concurrent first one is fine too)
            head, _ = AuditChain.objects.get_or_create(scope=event.chain)
            head = locked.get(pk=head.pk)
        # Stamped under the lock: in a chain, time rises with seq and id (the review page
        # turns date bounds into id bounds on that promise).
        event.created_at = timezone.now()
        event.seq = head.seq + 1
        event.prev_hash = head.last_hash
        event.hash = seal(event)
        event.save()
        head.seq = event.seq
        head.last_hash = event.hash
        fields = ["seq", "last_hash"]
        if action not in head.actions:
            head.actions = sorted([*head.actions, action])
            fields.append("actions")
        if actor is not None and head.actors.get(str(actor.pk)) != event.actor_label:
            head.actors = {**head.actors, str(actor.pk): event.actor_label}
            fields.append("actors")
        head.save(update_fields=fields)
        _checkpoint_if_due(head)
    return event


def _checkpoint_if_due(head: AuditChain) -> None:
    """Every AUDIT_CHECKPOINT_EVERY events, on a chain's first event, and when the last one
    is a day old (the `audit_checkpoint` command covers quiet days from cron)."""
    every = settings.AUDIT_CHECKPOINT_EVERY
    here = [Head(head.scope, head.seq, head.last_hash)]
    if head.checkpoint_at is None or (every and head.seq - head.checkpoint_seq >= every):
        write_checkpoint(here, kind=CheckpointKind.PERIODIC)
    elif timezone.now() - head.checkpoint_at >= timedelta(days=1):
        write_checkpoint(here, kind=CheckpointKind.DAILY)


def record_export(*, actor: User, team: Team, fmt: str, filters: str) -> AuditEvent:
    """The event that an export of the team's log starts: written before the first row is
    sent, it bounds what the export holds and proves the export happened."""
    return record(
        "audit.exported",
        actor=actor,
        team=team,
        target_type="audit",
        target_label=f"{fmt} export",
        details={"format": fmt, "filters": filters[:500]},
    )


def verify_team_chain(*, actor: User, team: Team) -> ChainReport:
    """Walk the team's chain now (the Verify button) and record who did and what it found."""
    scope = chain_scope(team)
    report = verify_scope(scope)
    record(
        "audit.verified",
        actor=actor,
        team=team,
        target_type="audit",
        target_label=scope,
        outcome=Outcome.SUCCESS if report.intact else Outcome.FAILURE,
        details={
            "events": report.events,
            "last_seq": report.last_seq,
            "problems": len(report.problems),
        },
    )
    return report


def seal_chain(team: Team) -> Head:
    """Inside the transaction that ends the team (after its last event, `team.deleted`): write
    the chain's head as a sealed `seal` checkpoint, row and server-log line, so the closed chain
    is anchored outside the database like any checkpoint, and a later row would show."""
    scope = chain_scope(team)
    head = AuditChain.objects.select_for_update().get(scope=scope)
    sealed = Head(scope, head.seq, head.last_hash)
    write_checkpoint([sealed], kind=CheckpointKind.SEAL)
    return sealed
