"""Fake audit events for benchmarks: N events in one team, bulk-inserted with a valid chain.

    manage.py audit_seed --team bench --events 1000000 --i-know

Never for real data (the events describe nothing that happened): refuses without DEBUG or
--i-know. The events continue the team's chain, sealed with the active audit key, so
audit_verify passes over them; created_at spreads over the last --days days, rising with seq.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
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


class Command(BaseCommand):
    help = "Bulk-insert fake, correctly chained audit events into one team (benchmarks only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="Team slug.")
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--actors", type=int, default=10)
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--batch", type=int, default=5000)
        parser.add_argument("--i-know", action="store_true", help="Fake data; not for production.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (settings.DEBUG or options["i_know"]):
            raise CommandError("audit_seed writes fake events: run it with DEBUG or --i-know.")
        team_model = AuditEvent._meta.get_field("team").related_model
        assert team_model is not None and not isinstance(team_model, str)
        team = team_model._default_manager.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        users = get_user_model()._default_manager
        actors = []
        for n in range(options["actors"]):
            user, _ = users.get_or_create(
                username=f"auditor{n}", defaults={"first_name": f"Auditor {n}"}
            )
            actors.append(user)
        ring = keyring()
        kid, key = ring.active_id, ring.keys[ring.active_id]
        scope = f"team:{team.pk}"  # audit.services.chain_scope
        total, batch = options["events"], options["batch"]
        rng = random.Random(7)  # noqa: S311  (fake data, reproducible)
        started = time.perf_counter()
        with transaction.atomic():
            head, _ = AuditChain.objects.get_or_create(scope=scope)
            head = AuditChain.objects.select_for_update().get(pk=head.pk)
            now = timezone.now()
            first = now - timedelta(days=options["days"])
            step = (now - first) / max(total, 1)
            seq, prev = head.seq, head.last_hash
            for offset in range(0, total, batch):
                rows = []
                for i in range(offset, min(offset + batch, total)):
                    actor = actors[i % len(actors)]
                    seq += 1
                    event = AuditEvent(
                        created_at=first + step * i,
                        team_id=team.pk,
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
                                scope, seq, prev, kid, event.created_at, team.pk, actor.pk,
                                event.actor_label, event.ip_address, event.user_agent,
                                event.request_id, event.origin, event.action, event.target_type,
                                event.target_id, event.target_label, event.outcome, event.details,
                            )
                        ),
                    )  # fmt: skip
                    prev = event.hash
                    rows.append(event)
                AuditEvent.objects.bulk_create(rows, batch_size=batch)
                if options["verbosity"] > 1:
                    self.stdout.write(f"{offset + len(rows)} events")
            actions = sorted(set(head.actions) | set(ACTIONS))
            labels = {str(a.pk): a.first_name for a in actors}
            AuditChain.objects.filter(pk=head.pk).update(
                seq=seq,
                last_hash=prev,
                actions=actions,
                actors={**head.actors, **labels},
                checkpoint_seq=seq,
                checkpoint_at=now,
            )
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Seeded {total} events into {scope} in {elapsed:.1f} s ({total / elapsed:,.0f}/s)."
        )
