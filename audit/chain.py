"""The keyed hash chain: how an event is sealed, how checkpoints are written and read, and how
a chain is verified — against the database and against checkpoints kept elsewhere.

Each event's `hash` is HMAC-SHA256, under the audit key named by its `key_id`, of a canonical
JSON of its content and the previous event's hash in the same chain (one chain per team, and
one for events outside any team). Someone who can write to the database but does not hold the
key cannot produce a valid hash, so an edited, inserted or re-chained row shows. Deleting the
newest rows and winding the head back leaves a valid but shorter chain: only a checkpoint kept
outside the database (the server log) shows that, which is why checkpoints are written there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .keyring import AuditKeyring, keyring
from .models import AuditChain, AuditCheckpoint, AuditEvent, CheckpointKind

GENESIS = "0" * 64
CHECKPOINT_MARK = "AUDIT-CHECKPOINT "
checkpoint_log = logging.getLogger("convai_admin.audit.checkpoint")

# The columns a seal covers, in the order verify reads them (values_list, no model instances).
SEALED_FIELDS = (
    "chain",
    "seq",
    "prev_hash",
    "key_id",
    "created_at",
    "team_id",
    "actor_id",
    "actor_label",
    "ip_address",
    "user_agent",
    "request_id",
    "origin",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "outcome",
    "details",
)


def iso(moment: datetime | str) -> str:
    """One spelling of a moment for seals and exports: UTC, ISO 8601, microseconds kept."""
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).isoformat()


def _dumps(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def canonical(values: Sequence[Any]) -> bytes:
    """The bytes an event's seal covers, from its SEALED_FIELDS values (docs/audit.md spells
    this out so an auditor can recompute it from an export)."""
    (
        chain,
        seq,
        prev,
        kid,
        created_at,
        team,
        actor,
        actor_label,
        ip,
        user_agent,
        request_id,
        origin,
        action,
        target_type,
        target_id,
        target_label,
        outcome,
        details,
    ) = values
    return _dumps(
        {
            "v": 2,
            "chain": chain,
            "seq": seq,
            "prev": prev,
            "kid": kid,
            "created_at": iso(created_at),
            "team": team,
            "actor": actor,
            "actor_label": actor_label,
            "ip": ip,
            "user_agent": user_agent,
            "request_id": request_id,
            "origin": origin,
            "action": action,
            "target": [target_type, target_id, target_label],
            "outcome": outcome,
            "details": details,
        }
    )


def mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sealed_values(event: AuditEvent) -> tuple[Any, ...]:
    return tuple(getattr(event, name) for name in SEALED_FIELDS)


def seal(event: AuditEvent, ring: AuditKeyring | None = None) -> str:
    """Set the event's key ID and return its hash under the active audit key."""
    ring = ring or keyring()
    event.key_id = ring.active_id
    return mac(ring.keys[event.key_id], canonical(sealed_values(event)))


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    scope: str
    seq: int
    hash: str


def _checkpoint_body(kind: str, at: str, kid: str, heads: Sequence[Head]) -> dict[str, Any]:
    return {
        "at": at,
        "kind": kind,
        "kid": kid,
        "heads": [[h.scope, h.seq, h.hash] for h in heads],
    }


def _row_mac(key: bytes, row: AuditCheckpoint) -> str:
    body = _checkpoint_body(
        row.kind, iso(row.created_at), row.key_id, [Head(row.scope, row.seq, row.hash)]
    )
    return mac(key, _dumps(body))


def checkpoint_row_is_genuine(row: AuditCheckpoint, ring: AuditKeyring | None = None) -> bool:
    key = (ring or keyring()).key(row.key_id)
    return key is not None and hmac.compare_digest(_row_mac(key, row), row.mac)


def checkpoint_line(heads: Sequence[Head], *, kind: str, at: datetime) -> str:
    """One line for the server log: the heads, when, and a MAC so a forged line shows."""
    ring = keyring()
    body = _checkpoint_body(kind, iso(at), ring.active_id, heads)
    body["mac"] = mac(ring.keys[ring.active_id], _dumps(body))
    return CHECKPOINT_MARK + json.dumps(body, sort_keys=True, separators=(",", ":"))


def write_checkpoint(heads: Sequence[Head], *, kind: str) -> str:
    """Store one sealed row per head and log one line with all of them (after commit, so a
    rolled-back head is never logged). Call inside the transaction that holds the heads."""
    ring = keyring()
    now = timezone.now()
    rows = []
    for head in heads:
        row = AuditCheckpoint(
            created_at=now,
            kind=kind,
            scope=head.scope,
            seq=head.seq,
            hash=head.hash,
            key_id=ring.active_id,
        )
        row.mac = _row_mac(ring.keys[ring.active_id], row)
        rows.append(row)
    AuditCheckpoint.objects.bulk_create(rows)
    if kind != CheckpointKind.PRUNE:
        AuditChain.objects.filter(scope__in=[h.scope for h in heads]).update(checkpoint_at=now)
        for head in heads:
            AuditChain.objects.filter(scope=head.scope).update(checkpoint_seq=head.seq)
    line = checkpoint_line(heads, kind=kind, at=now)
    transaction.on_commit(lambda: checkpoint_log.info(line))
    return line


def checkpoint_all(kind: str = CheckpointKind.DAILY) -> str:
    """A checkpoint of every chain's head (the daily cron job, `audit_checkpoint`)."""
    with transaction.atomic():
        heads = list(AuditChain.objects.select_for_update().order_by("scope"))
        return write_checkpoint([Head(h.scope, h.seq, h.last_hash) for h in heads], kind=kind)


@dataclass
class ParsedCheckpoint:
    heads: list[Head]
    at: str
    kind: str
    genuine: bool  # its MAC verifies under a key of the ring
    source: str = ""


def parse_checkpoint_lines(lines: Iterable[str], *, source: str = "") -> list[ParsedCheckpoint]:
    """Checkpoint lines as logged (any prefix before the mark is ignored), or bare
    "scope seq hash" lines as audit_verify prints the heads."""
    ring = keyring()
    found: list[ParsedCheckpoint] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"{source}:{number}" if source else f"line {number}"
        if CHECKPOINT_MARK in line:
            try:
                body = json.loads(line.split(CHECKPOINT_MARK, 1)[1])
                given = body.pop("mac")
                heads = [Head(str(s), int(q), str(h)) for s, q, h in body["heads"]]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{where}: not a checkpoint line") from None
            key = ring.key(str(body.get("kid", "")))
            genuine = key is not None and hmac.compare_digest(mac(key, _dumps(body)), str(given))
            found.append(
                ParsedCheckpoint(
                    heads, str(body.get("at", "")), str(body.get("kind", "")), genuine, where
                )
            )
            continue
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 64:
            found.append(
                ParsedCheckpoint(
                    [Head(parts[0], int(parts[1]), parts[2])], "", "head", False, where
                )
            )
    return found


# --- verification -----------------------------------------------------------------------------


@dataclass
class ChainReport:
    scope: str
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    pruned_through: int = 0
    checkpoints_matched: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _anchor(scope: str, ring: AuditKeyring) -> AuditCheckpoint | None:
    """The newest genuine prune anchor of the chain: events up to its seq may be gone."""
    for row in AuditCheckpoint.objects.filter(scope=scope, kind=CheckpointKind.PRUNE).order_by(
        "-seq"
    ):
        if checkpoint_row_is_genuine(row, ring):
            return row
    return None


def _rows(scope: str, chunk: int) -> Iterator[tuple[Any, ...]]:
    query = (
        AuditEvent.objects.filter(chain=scope)
        .order_by("seq")
        .values_list("id", "hash", *SEALED_FIELDS)
    )
    return query.iterator(chunk_size=chunk)


def verify_scope(scope: str, checkpoints: Iterable[Head] = (), *, chunk: int = 5000) -> ChainReport:
    """Walk one chain in seq order: every seal, every link, no gap; then compare with the
    stored head, the stored checkpoints and the ones given (kept outside the database)."""
    ring = keyring()
    report = ChainReport(scope)
    anchor = _anchor(scope, ring)
    if anchor is not None:
        report.pruned_through = anchor.seq
    expected: dict[int, set[str]] = {}
    for head in checkpoints:
        if head.scope == scope:
            expected.setdefault(head.seq, set()).add(head.hash)
    sealed_at: int | None = None  # a `seal` checkpoint closed the chain (its team was deleted)
    for row in AuditCheckpoint.objects.filter(scope=scope).exclude(kind=CheckpointKind.PRUNE):
        if checkpoint_row_is_genuine(row, ring):
            expected.setdefault(row.seq, set()).add(row.hash)
            if row.kind == CheckpointKind.SEAL:
                sealed_at = max(row.seq, sealed_at or 0)
        else:
            report.problems.append(f"{scope}: stored checkpoint #{row.pk} is not genuine")
    if anchor is not None:
        expected.setdefault(anchor.seq, set()).add(anchor.hash)

    problems = report.problems
    prev_hash: str | None = None
    next_seq = 0
    unknown_keys: set[str] = set()
    for columns in _rows(scope, chunk):
        event_id, event_hash, values = columns[0], columns[1], columns[2:]
        seq, prev, kid = values[1], values[2], values[3]
        if report.events == 0:
            report.first_seq = seq
            if anchor is not None and seq <= anchor.seq + 1:
                if seq == anchor.seq + 1 and prev != anchor.hash:
                    problems.append(f"{scope}: seq {seq} does not follow the prune anchor")
            elif seq != 1:
                problems.append(f"{scope}: event(s) missing before seq {seq} (no prune anchor)")
            elif prev != GENESIS:
                problems.append(f"{scope}: seq 1 does not start the chain")
        else:
            if seq != next_seq:
                problems.append(f"{scope}: event(s) missing between seq {next_seq - 1} and {seq}")
            if prev != prev_hash:
                problems.append(
                    f"{scope}: seq {seq} (id {event_id}) does not follow its predecessor"
                )
        key = ring.key(kid)
        if key is None:
            if kid not in unknown_keys:
                unknown_keys.add(kid)
                problems.append(
                    f"{scope}: seq {seq} (id {event_id}) is sealed with key ID {kid!r}, which "
                    "CONVAI_ADMIN_AUDIT_KEYS does not hold"
                )
        elif not hmac.compare_digest(mac(key, canonical(values)), event_hash):
            problems.append(f"{scope}: seq {seq} (id {event_id}) was altered or forged")
        if seq in expected:
            if event_hash in expected[seq]:
                report.checkpoints_matched += 1
            else:
                problems.append(f"{scope}: seq {seq} differs from a checkpoint of that position")
            del expected[seq]
        report.events += 1
        prev_hash = event_hash
        next_seq = seq + 1
        report.last_seq = seq
        report.last_hash = event_hash
    if report.events == 0 and anchor is not None:
        report.last_seq, report.last_hash = anchor.seq, anchor.hash
    for seq in sorted(expected):
        if seq > report.last_seq:
            problems.append(
                f"{scope}: a checkpoint saw seq {seq}, the chain now ends at {report.last_seq}: "
                f"the newest {seq - report.last_seq}+ event(s) were removed"
            )
        elif anchor is not None and seq <= anchor.seq:
            pass  # pruned, and the anchor vouches for the rest
        else:
            problems.append(f"{scope}: checkpoint position seq {seq} is missing from the chain")
    if sealed_at is not None and report.last_seq > sealed_at:
        problems.append(
            f"{scope}: {report.last_seq - sealed_at} event(s) after the chain was sealed at seq "
            f"{sealed_at} (its team was deleted)"
        )
    stored = AuditChain.objects.filter(scope=scope).first()
    if stored is None:
        if report.events:
            problems.append(f"{scope}: events exist but the chain's head row is gone")
    elif stored.seq != report.last_seq or (
        report.last_seq and stored.last_hash != report.last_hash
    ):
        problems.append(
            f"{scope}: the head says seq {stored.seq} but the chain ends at {report.last_seq}: "
            "the newest event(s) were removed"
        )
    return report


def verify_chain(scope: str) -> list[str]:
    """Problems of one chain against the database alone (empty when intact)."""
    return verify_scope(scope).problems


def all_scopes(extra: Iterable[str] = ()) -> list[str]:
    scopes = set(AuditChain.objects.values_list("scope", flat=True))
    scopes |= set(AuditCheckpoint.objects.values_list("scope", flat=True).distinct())
    scopes |= set(extra)
    return sorted(scopes)


def verify_all(checkpoints: Sequence[ParsedCheckpoint] = ()) -> list[ChainReport]:
    heads = [head for cp in checkpoints for head in cp.heads]
    return [verify_scope(scope, heads) for scope in all_scopes(h.scope for h in heads)]


def current_heads() -> list[Head]:
    return [
        Head(scope, seq, last)
        for scope, seq, last in AuditChain.objects.order_by("scope").values_list(
            "scope", "seq", "last_hash"
        )
    ]


def last_checkpoint(scope: str) -> AuditCheckpoint | None:
    return (
        AuditCheckpoint.objects.filter(scope=scope)
        .exclude(kind=CheckpointKind.PRUNE)
        .order_by("-seq", "-id")
        .first()
    )


def verify_export_lines(lines: Iterable[str]) -> tuple[int, list[str]]:
    """Re-verify a JSON Lines export offline (with the audit key): every seal, and the links
    between consecutive rows of a chain where the export holds both."""
    ring = keyring()
    problems: list[str] = []
    last: dict[str, tuple[int, str]] = {}
    count = 0
    rows = [json.loads(line) for line in lines if line.strip()]
    rows.sort(key=lambda r: (r["chain"], r["seq"]))
    for row in rows:
        count += 1
        values = [row[name] for name in SEALED_FIELDS]  # export columns are named alike
        key = ring.key(row["key_id"])
        where = f"{row['chain']} seq {row['seq']}"
        if key is None:
            problems.append(f"{where}: key ID {row['key_id']!r} is not in the ring")
        elif not hmac.compare_digest(mac(key, canonical(values)), row["hash"]):
            problems.append(f"{where}: altered or forged")
        previous = last.get(row["chain"])
        if (
            previous is not None
            and previous[0] + 1 == row["seq"]
            and previous[1] != row["prev_hash"]
        ):
            problems.append(f"{where}: does not follow seq {previous[0]}")
        last[row["chain"]] = (row["seq"], row["hash"])
    return count, problems
