"""Reconciliation: resolve the creates, clones and deletes whose request died mid-call.

A create, clone or delete is written down (PendingOperation) before Convai is called; one
left pending longer than any request can last is settled here by asking Convai what became
of it (docs/characters.md). The periodic pass also releases save claims left by a server
that died mid-save."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.context import audit_context, current
from audit.models import Outcome
from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRequestError
from convai.types import parse_moment
from convai_admin.errors import NotFound
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership

from .errors import AlreadyInTeam, CharacterError
from .models import Character, PendingOperation, Revision
from .operations import (
    OPERATION_ACTIONS,
    Actor,
    ConvaiCall,
    SystemActor,
    authorize,
    fail_operation,
    finish_operation,
    key_label,
    means_gone,
    record_character_event,
    refuse,
    snapshot_of,
)
from .records import store_for_operation, tombstone
from .remote import (
    fields_from_remote,
)
from .selectors import operation_key, operation_overdue_before, save_claim_expired_before


class Resolution:
    ADOPTED = "adopted"  # create/clone: Convai made it; stored here now
    DELETED = "deleted"  # delete: Convai no longer has it; the tombstone is written now
    FAILED = "failed"  # it did not happen
    DONE = "done"  # finished meanwhile (by its own request)
    UNKNOWN = "unknown"  # Convai could not tell yet (unreachable, key unusable): try later


OPERATION_KEEP_DAYS = 30


def reconcile_pending_operations() -> str:
    """One pass (run every CHARACTER_RECONCILE_INTERVAL seconds): resolve each create, clone
    and delete pending for longer than CHARACTER_RECONCILE_AFTER seconds by asking Convai,
    and release save claims left by a server that died mid-save. Returns a summary."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHARACTER_RECONCILE_AFTER)
    pending = PendingOperation.objects.filter(
        state=PendingOperation.State.PENDING, created_at__lte=cutoff
    ).select_related("team", "api_key", "api_key__owner", "character", "actor")
    counts: dict[str, int] = {}
    with audit_context(origin=current().origin or "task reconcile_pending_operations"):
        for operation in pending.order_by("created_at", "pk"):
            outcome = resolve_operation(operation=operation, actor=SystemActor(operation.team))
            counts[outcome] = counts.get(outcome, 0) + 1
    released = Character.objects.filter(
        saving_since__lt=save_claim_expired_before(), deleted_at__isnull=True
    ).update(saving_token="", saving_since=None, saving_by=None)
    # A finished operation only answers a form sent again; after a month none will be (the
    # audit log keeps what happened).
    PendingOperation.objects.filter(
        finished_at__lt=timezone.now() - timedelta(days=OPERATION_KEEP_DAYS)
    ).exclude(state=PendingOperation.State.PENDING).delete()
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none"
    return f"pending operations: {summary}; interrupted saves released: {released}"


def _team_operation(actor: Membership, operation_id: int) -> PendingOperation:
    """One of the actor's team's operations, for whoever may do that operation."""
    operation = (
        PendingOperation.objects.filter(team=actor.team, pk=operation_id)
        .select_related("team", "api_key", "character", "actor", "result")
        .first()
    )
    if operation is None:
        raise NotFound("There is no such operation in this team.")
    authorize(
        actor=actor,
        action=OPERATION_ACTIONS[operation.kind],
        character=operation.character if operation.kind != "create" else None,
    )
    return operation


def check_operation(*, actor: Membership, operation_id: int) -> tuple[PendingOperation, str]:
    """ "Check now" on an operation whose outcome is unknown: whoever may do the operation
    may ask Convai at once. Returns the operation as it stands and the resolution."""
    operation = _team_operation(actor, operation_id)
    if operation.state != PendingOperation.State.PENDING:
        return operation, Resolution.DONE
    outcome = resolve_operation(operation=operation, actor=actor)
    operation.refresh_from_db()
    return operation, outcome


def dismiss_operation(*, actor: Membership, operation_id: int) -> PendingOperation:
    """Give up on an operation whose outcome nothing can find out any more: its request is
    over and no key can ask Convai (its own was revoked or deleted, and no current member
    holds a key of the same account: selectors.operation_key). It is marked failed here,
    with one event; if Convai did make the character, an import through a key of that
    account finds it. While a key can still ask, "Check now" settles it instead."""
    operation = _team_operation(actor, operation_id)
    action = OPERATION_ACTIONS[operation.kind]
    if operation.state != PendingOperation.State.PENDING:
        return operation
    if operation.created_at > operation_overdue_before() or operation_key(operation) is not None:
        raise refuse(
            action=action,
            actor=actor,
            error=CharacterError(
                "Convai can still be asked what became of this: it is checked automatically, "
                "or use “Check now”."
            ),
            reason="operation can still be checked",
            character=operation.character,
            label=operation.name,
            operation=operation.pk,
        )
    message = (
        f"Dismissed by {actor.user.display_name}: no API key could ask Convai what became of it."
    )
    with transaction.atomic():
        dismissed = PendingOperation.objects.filter(
            pk=operation.pk, state=PendingOperation.State.PENDING
        ).update(state=PendingOperation.State.FAILED, finished_at=timezone.now(), message=message)
        if dismissed:
            record_character_event(
                action=action,
                actor=actor,
                character=operation.character,
                label=operation.name,
                outcome=Outcome.FAILURE,
                details={
                    "reason": "dismissed",
                    "operation": operation.pk,
                    "for": _for_whom(operation),
                    "key_used": key_label(operation.api_key),
                },
            )
    operation.refresh_from_db()
    return operation


def resolve_operation(*, operation: PendingOperation, actor: Actor) -> str:
    """Ask Convai what became of one pending operation and settle it here. "Not there" is
    only concluded once the operation's own request must be over (operation_overdue_before):
    before that, it may still be on its way."""
    action = OPERATION_ACTIONS[operation.kind]
    api_key = operation_key(operation)
    if api_key is None:
        return Resolution.UNKNOWN
    try:
        client = client_for(api_key, actor=None)
    except ApiKeyUnusable:
        return Resolution.UNKNOWN
    settle = _Settling(
        operation=operation,
        actor=actor,
        api_key=api_key,
        client=client,
        call=ConvaiCall(api_key=api_key),
        details={"recovered": True, "operation": operation.pk, "for": _for_whom(operation)},
        overdue=operation.created_at <= operation_overdue_before(),
    )
    try:
        if operation.kind == PendingOperation.Kind.DELETE:
            return _resolve_delete(settle)
        return _resolve_made(settle, action=action)
    except ConvaiError:
        return Resolution.UNKNOWN


@dataclass(frozen=True)
class _Settling:
    """One pending operation being settled: through `api_key`'s client (its own key, or one
    of the same Convai account once its own was revoked: selectors.operation_key), audited
    with `call` and `details`; `overdue` once its own request must be over."""

    operation: PendingOperation
    actor: Actor
    api_key: ApiKey
    client: ConvaiClient
    call: ConvaiCall
    details: dict[str, Any]
    overdue: bool


def _for_whom(operation: PendingOperation) -> str:
    return operation.actor.display_name if operation.actor is not None else ""


def _resolve_delete(settle: _Settling) -> str:
    operation = settle.operation
    character = operation.character
    if character is None:
        fail_operation(operation=operation, message="The character is no longer recorded here.")
        return Resolution.FAILED
    if character.is_deleted:
        finish_operation(operation=operation, result=character)
        return Resolution.DONE
    try:
        settle.client.get_character(character.convai_id)
    except ConvaiRequestError as error:
        if not means_gone(error):
            raise
        tombstone(
            actor=settle.actor,
            character=character,
            operation=operation,
            snapshot=None,
            details=settle.call.details(**settle.details),
            note="finished after an interrupted delete",
        )
        return Resolution.DELETED
    if not settle.overdue:
        return Resolution.UNKNOWN
    fail_operation(
        operation=operation, message="Convai still has the character: the delete did not happen."
    )
    return Resolution.FAILED


def _resolve_made(settle: _Settling, *, action: str) -> str:
    """A create or clone: find the character Convai made (_made_on_convai) and adopt it; if
    there is none, it was adopted here meanwhile, or (once overdue) it did not happen."""
    operation = settle.operation
    names = {operation.name}
    if operation.kind == PendingOperation.Kind.CLONE:
        # A copy keeps its source's name until it is renamed, which may not have happened.
        names.add(str(operation.fields.get("source_name") or ""))
    convai_id = _made_on_convai(operation=operation, client=settle.client, names=names)
    if convai_id is None:
        adopted = _adopted_meanwhile(operation=operation, names=names, api_key=settle.api_key)
        if adopted is not None:
            # "Check Convai" (adopt_from_convai) or an import took it in already.
            finish_operation(operation=operation, result=adopted)
            return Resolution.DONE
        if not settle.overdue:
            return Resolution.UNKNOWN
        fail_operation(
            operation=operation,
            message=(
                f"Convai has no character called “{operation.name}” made then: it was not created."
            ),
        )
        return Resolution.FAILED
    return _adopt(settle, convai_id=convai_id, action=action)


def _made_on_convai(
    *, operation: PendingOperation, client: ConvaiClient, names: set[str]
) -> str | None:
    """The Convai ID of the character the operation made: by name, created at or after the
    operation (Convai's timestamps are whole seconds without a zone: a small tolerance), not
    already in the team; the earliest match. None when Convai has no such character."""
    taken = set(
        Character.objects.filter(team=operation.team, deleted_at__isnull=True).values_list(
            "convai_id", flat=True
        )
    )
    since = operation.created_at - timedelta(seconds=2)
    matches = []
    for item in client.list_characters():
        moment = parse_moment(item.timestamp)
        if (
            item.character_name in names
            and item.character_id not in taken
            and (moment is None or moment >= since.replace(microsecond=0))
        ):
            matches.append((moment or since, item.character_id))
    if not matches:
        return None
    _, convai_id = min(matches)
    return convai_id


def _adopt(settle: _Settling, *, convai_id: str, action: str) -> str:
    """Store what Convai made, credited to the person the operation was for."""
    operation = settle.operation
    remote = settle.client.get_character(convai_id)
    reason = (
        Revision.Reason.CLONED
        if operation.kind == PendingOperation.Kind.CLONE
        else Revision.Reason.CREATED
    )
    try:
        store_for_operation(
            operation=operation,
            actor=settle.actor,
            convai_id=convai_id,
            api_key=settle.api_key,
            fields=fields_from_remote(remote),
            snapshot=snapshot_of(remote),
            reason=reason,
            action=action,
            call=settle.call,
            extra=settle.details,
            note=f"recovered after an interrupted {operation.get_kind_display().lower()}",
            credited_to=operation.actor,
        )
    except AlreadyInTeam:
        return Resolution.DONE
    return Resolution.ADOPTED


def _adopted_meanwhile(
    *, operation: PendingOperation, names: set[str], api_key: ApiKey
) -> Character | None:
    """A character of the team, through the operation's key (or the one settling it) and by
    one of its names, stored here after the operation started and not the result of another
    operation."""
    results = PendingOperation.objects.filter(result__isnull=False).values("result")
    return (
        Character.objects.filter(
            team=operation.team,
            bound_key__in={key.pk for key in (operation.api_key, api_key) if key is not None},
            name__in=names,
            created_at__gte=operation.created_at,
            deleted_at__isnull=True,
        )
        .exclude(pk__in=results)
        .order_by("created_at")
        .first()
    )
