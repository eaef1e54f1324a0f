"""Fake audit events FOR BENCHMARKS ONLY (tests/bench/audit.py): N events in one team,
bulk-inserted with a valid chain.

    seed_audit_events(team="bench", events=1_000_000)

Never for real data (the events describe nothing that happened): it lives here, not in the
audit app, so no deployment ships it. The events continue the team's chain, sealed with the
active audit key, so audit_verify passes over them; created_at spreads over the last `days`
days, rising with seq. Rows go in through `insert_rows` (COPY on PostgreSQL): the seals are
computed here in Python, one after another (each covers the previous hash), exactly as
`audit.services.record` computes them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.chain import canonical, mac
from audit.keyring import keyring
from audit.models import AuditChain, AuditEvent, Outcome
from teams.models import Team

from .copy_rows import insert_rows

ACTIONS = [
    "character.create",
    "character.update",
    "character.delete",
    "character.sync",
    "character.clone",
    "character.import",
    "character.export",
    "character.restore",
    "member.role_changed",
    "member.removed",
    "invitation.created",
    "invitation.revoked",
    "api_key.added",
    "api_key.verified",
    "team.renamed",
    "job.started",
    "job.finished",
]
OUTCOMES = [Outcome.SUCCESS] * 17 + [Outcome.FAILURE, Outcome.DENIED, Outcome.UNKNOWN]


def seed_audit_events(
    *,
    team: str,
    events: int = 1_000_000,
    actors: int = 10,
    days: int = 365,
    batch: int = 20_000,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Bulk-insert `events` fake, correctly chained audit events into team `team` by
    `actors` users (auditor0..N, created when missing). Returns a one-line summary."""
    the_team = Team.objects.filter(slug=team).first()
    if the_team is None:
        raise ValueError(f"No team {team!r}.")
    authors = _authors(actors)
    ring = keyring()
    seal = Seal(scope=f"team:{the_team.pk}", kid=ring.active_id, key=ring.keys[ring.active_id])
    rng = random.Random(7)
    started = time.perf_counter()
    with transaction.atomic():
        head, _ = AuditChain.objects.get_or_create(scope=seal.scope)
        head = AuditChain.objects.select_for_update().get(pk=head.pk)
        now = timezone.now()
        first = now - timedelta(days=days)
        step = (now - first) / max(events, 1)
        seq, prev = head.seq, head.last_hash
        for offset in range(0, events, batch):
            rows = []
            for i in range(offset, min(offset + batch, events)):
                seq += 1
                event = _event(i, the_team.pk, authors[i % len(authors)], rng)
                event.created_at = first + step * i
                prev = seal.chain(event, seq, prev)
                rows.append(event)
            insert_rows(AuditEvent, rows)  # COPY on PostgreSQL
            if progress is not None:
                progress(f"{offset + len(rows)} events")
        AuditChain.objects.filter(pk=head.pk).update(
            seq=seq,
            last_hash=prev,
            actions=sorted(set(head.actions) | set(ACTIONS)),
            actors={**head.actors, **{str(a.pk): a.first_name for a in authors}},
            checkpoint_seq=seq,
            checkpoint_at=now,
        )
    elapsed = time.perf_counter() - started
    return (
        f"Seeded {events} events into {seal.scope} in {elapsed:.1f} s ({events / elapsed:,.0f}/s)."
    )


def _authors(count: int) -> list[Any]:
    users = get_user_model()._default_manager
    return [
        users.get_or_create(username=f"auditor{n}", defaults={"first_name": f"Auditor {n}"})[0]
        for n in range(count)
    ]


def _event(i: int, team_id: int, actor: Any, rng: random.Random) -> AuditEvent:
    """The i-th fake event, not yet chained."""
    return AuditEvent(
        team_id=team_id,
        actor_id=actor.pk,
        actor_label=actor.first_name,
        ip_address=f"192.0.2.{i % 250 + 1}",
        user_agent="Mozilla/5.0 (benchmark)",
        request_id=f"{i:032x}",
        origin="web",
        action=ACTIONS[rng.randrange(len(ACTIONS))],
        target_type="character",
        target_id=f"char-{i % 5000:05d}",
        target_label=f"Character {i % 5000}",
        outcome=OUTCOMES[rng.randrange(len(OUTCOMES))],
        details={"key_used": "Bench (…abcd)", "duration_ms": i % 900},
    )


@dataclass(frozen=True)
class Seal:
    """Chains events the way audit.services.record does (one scope, the active key)."""

    scope: str
    kid: str
    key: bytes

    def chain(self, event: AuditEvent, seq: int, prev: str) -> str:
        event.chain, event.seq, event.prev_hash, event.key_id = self.scope, seq, prev, self.kid
        event.hash = mac(
            self.key,
            canonical(
                (
                    self.scope, seq, prev, self.kid, event.created_at, event.team_id,
                    event.actor_id, event.actor_label, event.ip_address, event.user_agent,
                    event.request_id, event.origin, event.action, event.target_type,
                    event.target_id, event.target_label, event.outcome, event.details,
                )
            ),
        )  # fmt: skip
        return event.hash
