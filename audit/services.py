"""`record` is the only way an audit event is written.

Each event's hash covers its content and the previous event's hash in the same chain (one
chain per team, plus one for events outside any team), so editing or deleting a past row
breaks every later hash — `verify_chain` finds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction

from .context import current
from .models import AuditChain, AuditEvent, Outcome

if TYPE_CHECKING:
    from accounts.models import User
    from teams.models import Team

GENESIS = "0" * 64
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


def compute_hash(event: AuditEvent) -> str:
    payload = {
        "chain": event.chain,
        "seq": event.seq,
        "prev": event.prev_hash,
        "created_at": event.created_at.isoformat(),
        "team": event.team_id,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "ip": event.ip_address,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "origin": event.origin,
        "action": event.action,
        "target": [event.target_type, event.target_id, event.target_label],
        "outcome": event.outcome,
        "details": event.details,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
        ip_address=context.ip_address,
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
    with transaction.atomic():
        head, _ = AuditChain.objects.get_or_create(scope=event.chain)
        head = AuditChain.objects.select_for_update().get(pk=head.pk)
        event.seq = head.seq + 1
        event.prev_hash = head.last_hash
        # Round-trip details through JSON so the hash is computed on what the DB will return.
        event.details = json.loads(json.dumps(event.details, default=str))
        event.hash = compute_hash(event)
        event.save()
        head.seq = event.seq
        head.last_hash = event.hash
        head.save(update_fields=["seq", "last_hash"])
    return event


def verify_chain(scope: str) -> list[str]:
    """Walk one chain in order; return a description of every break (empty when intact)."""
    problems: list[str] = []
    expected_prev = GENESIS
    expected_seq = 1
    for event in AuditEvent.objects.filter(chain=scope).order_by("seq").iterator():
        if event.seq != expected_seq:
            problems.append(f"{scope}: event(s) missing before seq {event.seq}")
        if event.prev_hash != expected_prev:
            problems.append(f"{scope}: seq {event.seq} does not follow its predecessor")
        if compute_hash(event) != event.hash:
            problems.append(f"{scope}: seq {event.seq} (id {event.pk}) was altered")
        expected_prev = event.hash
        expected_seq = event.seq + 1
    head = AuditChain.objects.filter(scope=scope).first()
    if head is not None and head.seq != expected_seq - 1:
        problems.append(f"{scope}: the last {head.seq - expected_seq + 1} event(s) were removed")
    return problems
