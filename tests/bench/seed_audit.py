"""Fake audit events FOR BENCHMARKS ONLY (tests/bench/audit.py): N events in one team,
bulk-inserted with a valid chain.

    seed_audit_events(team="bench", events=1_000_000)

Never for real data (the events describe nothing that happened): it lives here, not in the
audit app, so no deployment ships it. The events continue the team's chain, sealed with the
active audit key, so audit_verify passes over them; created_at spreads over the last `days`
days, rising with seq.

Fast on PostgreSQL (issue 14): plain value tuples, no model instances, written with COPY
(tests/bench/copy_rows.py); when the load outnumbers the rows already there, the table's
indexes and constraints are dropped for it and built again after it, as pg_restore does.
The seals are computed here in Python, one after another (each covers the previous hash),
with audit.chain's own `canonical` and `mac`, exactly as `audit.services.record` computes
them, so `audit_verify` passes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.chain import SEALED_FIELDS, canonical, mac
from audit.keyring import keyring
from audit.models import AuditChain, AuditEvent, Outcome
from teams.models import Team

from .copy_rows import indexes_built_after, insert_values

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
COLUMNS = (*SEALED_FIELDS, "hash")


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
    scope, kid = f"team:{the_team.pk}", ring.active_id
    key = ring.keys[kid]
    rng = random.Random(7)
    started = time.perf_counter()
    with transaction.atomic():
        head, _ = AuditChain.objects.get_or_create(scope=scope)
        head = AuditChain.objects.select_for_update().get(pk=head.pk)
        now = timezone.now()
        first = now - timedelta(days=days)
        step = (now - first) / max(events, 1)
        seq, prev = head.seq, head.last_hash
        # Rebuilding the indexes pays when the load outnumbers the rows already there.
        rebuild = events > AuditEvent.objects.count()
        with indexes_built_after(AuditEvent) if rebuild else nullcontext():
            for offset in range(0, events, batch):
                rows = []
                for i in range(offset, min(offset + batch, events)):
                    seq += 1
                    # The values a seal covers, in SEALED_FIELDS order, then the seal itself:
                    # what audit.services.record computes for one event (see audit/chain.py).
                    values = (
                        scope, seq, prev, kid, first + step * i,
                        *_content(i, the_team.pk, authors[i % len(authors)], rng),
                    )  # fmt: skip
                    prev = mac(key, canonical(values))
                    rows.append((*values, prev))
                insert_values(AuditEvent, COLUMNS, rows)  # COPY on PostgreSQL
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
    return f"Seeded {events} events into {scope} in {elapsed:.1f} s ({events / elapsed:,.0f}/s)."


def _authors(count: int) -> list[Any]:
    users = get_user_model()._default_manager
    return [
        users.get_or_create(username=f"auditor{n}", defaults={"first_name": f"Auditor {n}"})[0]
        for n in range(count)
    ]


def _content(i: int, team_id: int, actor: Any, rng: random.Random) -> tuple[Any, ...]:
    """The i-th fake event's content: SEALED_FIELDS from team_id on."""
    return (
        team_id,
        actor.pk,
        actor.first_name,
        f"192.0.2.{i % 250 + 1}",
        "Mozilla/5.0 (benchmark)",
        f"{i:032x}",
        "web",
        ACTIONS[rng.randrange(len(ACTIONS))],
        "character",
        f"char-{i % 5000:05d}",
        f"Character {i % 5000}",
        OUTCOMES[rng.randrange(len(OUTCOMES))],
        {"key_used": "Bench (…abcd)", "duration_ms": i % 900},
    )
