"""Fake audit events FOR BENCHMARKS ONLY (tests/bench/audit.py): N events in one team,
bulk-inserted with a valid chain.

    seed_audit_events(team="bench", events=1_000_000)

Never for real data (the events describe nothing that happened): it lives here, not in the
audit app, so no deployment ships it. The events continue the team's chain, sealed with the
active audit key, so audit_verify passes over them; created_at spreads over the last `days`
days, rising with seq.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.chain import canonical, mac
from audit.keyring import keyring
from audit.models import AuditChain, AuditEvent, Outcome

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
    batch: int = 5000,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Bulk-insert `events` fake, correctly chained audit events into team `team` by
    `actors` users (auditor0..N, created when missing). Returns a one-line summary."""
    team_model = AuditEvent._meta.get_field("team").related_model
    assert team_model is not None and not isinstance(team_model, str)
    the_team = team_model._default_manager.filter(slug=team).first()
    if the_team is None:
        raise ValueError(f"No team {team!r}.")
    users = get_user_model()._default_manager
    authors = []
    for n in range(actors):
        user, _ = users.get_or_create(
            username=f"auditor{n}", defaults={"first_name": f"Auditor {n}"}
        )
        authors.append(user)
    ring = keyring()
    kid, key = ring.active_id, ring.keys[ring.active_id]
    scope = f"team:{the_team.pk}"  # audit.services.chain_scope
    total = events
    rng = random.Random(7)
    started = time.perf_counter()
    with transaction.atomic():
        head, _ = AuditChain.objects.get_or_create(scope=scope)
        head = AuditChain.objects.select_for_update().get(pk=head.pk)
        now = timezone.now()
        first = now - timedelta(days=days)
        step = (now - first) / max(total, 1)
        seq, prev = head.seq, head.last_hash
        for offset in range(0, total, batch):
            rows = []
            for i in range(offset, min(offset + batch, total)):
                actor = authors[i % len(authors)]
                seq += 1
                event = AuditEvent(
                    created_at=first + step * i,
                    team_id=the_team.pk,
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
                    chain=scope,
                    seq=seq,
                    prev_hash=prev,
                    key_id=kid,
                )
                event.hash = mac(
                    key,
                    canonical(
                        (
                            scope, seq, prev, kid, event.created_at, the_team.pk, actor.pk,
                            event.actor_label, event.ip_address, event.user_agent,
                            event.request_id, event.origin, event.action, event.target_type,
                            event.target_id, event.target_label, event.outcome, event.details,
                        )
                    ),
                )  # fmt: skip
                prev = event.hash
                rows.append(event)
            AuditEvent.objects.bulk_create(rows, batch_size=batch)
            if progress is not None:
                progress(f"{offset + len(rows)} events")
        actions = sorted(set(head.actions) | set(ACTIONS))
        labels = {str(a.pk): a.first_name for a in authors}
        AuditChain.objects.filter(pk=head.pk).update(
            seq=seq,
            last_hash=prev,
            actions=actions,
            actors={**head.actors, **labels},
            checkpoint_seq=seq,
            checkpoint_at=now,
        )
    elapsed = time.perf_counter() - started
    return f"Seeded {total} events into {scope} in {elapsed:.1f} s ({total / elapsed:,.0f}/s)."
