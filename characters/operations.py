"""The plumbing every character operation shares (services, copying, bulk jobs, bundles).

The acting member or the system, the audit of one character event and of refusals, Convai
calls and what their failures mean, the keys and clients an operation may use, revisions,
drift checks, the save claim (compare-and-set on the version) and the pending-operation
intent written down before a create, clone or delete reaches Convai. Every function here is
keyword-only; the named operations built from them live in characters.services."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID, uuid4

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.models import Outcome
from audit.services import record
from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRequestError, ConvaiTimeoutError
from convai.types import CharacterDetails
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams import policy
from teams.models import Membership, Team

from .convai_messages import explain
from .errors import (
    CharacterDeleted,
    CharacterError,
    Conflict,
    ConvaiFailed,
    Drift,
    KeyNotUsable,
    NoUsableKey,
    OperationDone,
    OperationPending,
    RemoteMissing,
    SaveInProgress,
)
from .models import EDITABLE_FIELDS, Character, PendingOperation, Revision
from .remote import (
    FieldChange,
    audit_changes,
    differences,
    fields_from_remote,
    fields_from_snapshot,
    redact,
)
from .selectors import key_is_usable, save_claim_expired_before, usable_keys_for

TARGET_TYPE = "character"


E = TypeVar("E", bound="CharacterError")


def key_label(api_key: ApiKey | None) -> str:
    """How a key is named in messages and audit details: its label and last four characters."""
    return f"{api_key.label} (…{api_key.last_four})" if api_key is not None else ""


@dataclass
class ConvaiCall:
    """What one operation tells the audit log about its Convai calls: the key used and how
    long it took (set `started` when the calls ran elsewhere, in a job's pool)."""

    api_key: ApiKey | None = None
    started: float = field(default_factory=time.perf_counter)

    def details(self, **extra: Any) -> dict[str, Any]:
        return {
            "key_used": key_label(self.api_key),
            "duration_ms": round((time.perf_counter() - self.started) * 1000),
            **extra,
        }


@dataclass(frozen=True)
class SystemActor:
    """The dashboard acting on its own (reconciling an interrupted operation): audited under
    `label`, with no person; the person the work was for is named in the details."""

    team: Team
    label: str = "system (reconciliation)"
    user: None = None

    @property
    def team_id(self) -> int:
        return self.team.pk


Actor = Membership | SystemActor


def record_character_event(
    *,
    action: str,
    actor: Actor,
    character: Character | None = None,
    convai_id: str = "",
    label: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one character event for the actor's team (target: the character, or a Convai ID
    and label when there is no record). Call it inside the transaction of the change it
    describes; a failure, after the rollback."""
    record(
        action,
        actor=actor.user,
        actor_label=actor.label if isinstance(actor, SystemActor) else None,
        team=actor.team,
        target_type=TARGET_TYPE,
        target_id=character.convai_id if character is not None else convai_id,
        target_label=character.name if character is not None else label,
        outcome=outcome,
        details=details or {},
    )


def refuse(
    *,
    action: str,
    actor: Membership,
    error: E,
    reason: str,
    character: Character | None = None,
    label: str = "",
    call: ConvaiCall | None = None,
    **details: Any,
) -> E:
    """Record a refusal once, where it is made (after any rollback), and hand the error back
    for the caller to raise."""
    record_character_event(
        action=action,
        actor=actor,
        character=character,
        label=label,
        outcome=Outcome.FAILURE,
        details=(call or ConvaiCall()).details(reason=reason, **details),
    )
    return error


def flag_missing(character: Character) -> None:
    if character.remote_missing_at is None:
        character.remote_missing_at = timezone.now()
        Character.objects.filter(pk=character.pk).update(
            remote_missing_at=character.remote_missing_at
        )


def flag_found(character: Character) -> None:
    if character.remote_missing_at is not None:
        character.remote_missing_at = None
        Character.objects.filter(pk=character.pk).update(remote_missing_at=None)


@contextmanager
def convai_calls(
    *,
    action: str,
    actor: Membership,
    call: ConvaiCall,
    character: Character | None = None,
    label: str = "",
    write: bool = False,
    known: bool = False,
) -> Iterator[None]:
    """Run Convai calls; a failure is recorded (`unknown` for a write that timed out) and
    raised as ConvaiFailed with the client's user-facing message (see record_convai_failure).

    `known`: the calls read `character` by its Convai ID through its bound key, so a 400 means
    Convai no longer has it (its documented answer for an unknown ID): the record is flagged
    and RemoteMissing raised, instead of a ConvaiFailed that would repeat forever."""
    try:
        yield
    except ConvaiError as error:
        raise record_convai_failure(
            action=action,
            actor=actor,
            error=error,
            call=call,
            character=character,
            label=label,
            write=write,
            known=known,
        ) from None


def record_convai_failure(
    *,
    action: str,
    actor: Membership,
    error: ConvaiError,
    call: ConvaiCall,
    character: Character | None = None,
    convai_id: str = "",
    label: str = "",
    write: bool = False,
    known: bool = False,
    **extra: Any,
) -> CharacterError:
    """Record one failed Convai call and hand back the domain error to raise (or whose message
    to show): the one place that decides what a failure means.

    A write that timed out may have happened (outcome `unknown`, `maybe_happened`). With
    `known` (a get of a character we hold, through its bound key), a 400 means Convai no longer
    has it: the record is flagged and the error is RemoteMissing. `extra` goes into the audit
    details (a job's ID, say)."""
    if isinstance(error, ConvaiTimeoutError):
        record_character_event(
            action=action,
            actor=actor,
            character=character,
            convai_id=convai_id,
            label=label,
            outcome=Outcome.UNKNOWN if write else Outcome.FAILURE,
            details=call.details(convai_status=None, convai_message=error.message, **extra),
        )
        return ConvaiFailed(explain(error, key=key_label(call.api_key)), maybe_happened=write)
    convai: dict[str, Any] = {
        "convai_status": error.status,
        "convai_message": error.remote_message or error.message,
    }
    if known and character is not None and means_gone(error):
        flag_missing(character)
        return refuse(
            action=action,
            actor=actor,
            error=RemoteMissing(),
            reason="gone from Convai",
            character=character,
            call=call,
            **convai,
            **extra,
        )
    record_character_event(
        action=action,
        actor=actor,
        character=character,
        convai_id=convai_id,
        label=label,
        outcome=Outcome.FAILURE,
        details=call.details(**convai, **extra),
    )
    return ConvaiFailed(explain(error, key=key_label(call.api_key)), status=error.status)


def means_gone(error: ConvaiError) -> bool:
    """Convai's answer to a get of an ID it does not have is a 400 (by status, not text)."""
    return isinstance(error, ConvaiRequestError) and error.status == 400


def authorize(
    *, actor: Membership, action: str, character: Character | None = None, event: str = ""
) -> None:
    """Ask teams.policy again (a view is not the only caller); a refusal is recorded there, as
    `event` (the action by default), and raised."""
    policy.authorize(
        actor,
        action,
        character,
        event=event or action,
        target_type=TARGET_TYPE,
        target_id=character.convai_id if character is not None else "",
        target_label=character.name if character is not None else "",
    )


def bound_client(
    *, action: str, actor: Membership, character: Character, call: ConvaiCall
) -> ConvaiClient:
    """A client with the character's bound key; refused (and recorded) when it is not usable."""
    return _client(
        character.bound_key,
        NoUsableKey,
        usable=character.bound_key is not None and key_is_usable(character),
        action=action,
        actor=actor,
        reason="no usable key",
        call=call,
        character=character,
    )


def own_key(*, action: str, actor: Membership, api_key_id: UUID | str, label: str) -> ApiKey:
    """One of the actor's own verified, active keys; anything else is refused and recorded."""
    try:
        return usable_keys_for(actor.user).get(pk=api_key_id)
    except (ApiKey.DoesNotExist, ValueError, TypeError, ValidationError):
        raise refuse(
            action=action, actor=actor, error=KeyNotUsable(), reason="key not usable", label=label
        ) from None


def own_client(
    *, action: str, actor: Membership, api_key: ApiKey, call: ConvaiCall, label: str
) -> ConvaiClient:
    """A client with one of the actor's own keys (from own_key); refused and recorded when the
    key cannot be opened."""
    return _client(
        api_key,
        KeyNotUsable,
        action=action,
        actor=actor,
        reason="key not usable",
        call=call,
        label=label,
    )


def _client(
    api_key: ApiKey | None,
    unusable: type[NoUsableKey | KeyNotUsable],
    *,
    usable: bool = True,
    action: str,
    actor: Membership,
    reason: str,
    call: ConvaiCall,
    character: Character | None = None,
    label: str = "",
) -> ConvaiClient:
    """A client with `api_key` for `call`. A key that is not `usable`, or cannot be opened,
    is refused (and recorded) with `unusable`."""
    call.api_key = api_key
    message = None
    if api_key is not None and usable:
        try:
            return client_for(api_key, actor=actor.user)
        except ApiKeyUnusable as error:
            message = error.message
    raise refuse(
        action=action,
        actor=actor,
        error=unusable(message),
        reason=reason,
        character=character,
        label=label,
        call=call,
    ) from None


def snapshot_of(details: CharacterDetails) -> dict[str, Any]:
    """The whole remote payload as we keep it: third-party secrets redacted."""
    snapshot: dict[str, Any] = redact(details.raw)
    return snapshot


def add_revision(
    *, character: Character, reason: str, user: User | None, note: str = ""
) -> Revision:
    return Revision.objects.create(
        character=character,
        number=character.version,
        reason=reason,
        fields=character.editable(),
        snapshot=character.snapshot,
        note=note[:200],
        created_by=user,
    )


def apply_fields(*, character: Character, fields: dict[str, Any]) -> None:
    for name in EDITABLE_FIELDS:
        if name in fields and fields[name] is not None:
            value = fields[name]
            setattr(character, name, list(value) if isinstance(value, list) else value)


def local_write_failed(convai_id: str) -> CharacterError:
    return CharacterError(
        f"Convai saved the character (ID {convai_id}), but it could not be recorded here. "
        "Use “Check Convai” to adopt it; nothing was lost."
    )


def get_known(
    *, action: str, actor: Membership, call: ConvaiCall, client: ConvaiClient, character: Character
) -> CharacterDetails:
    """Get a character we hold, by its Convai ID, through its bound key. Convai answering that
    it has no such character flags the record (RemoteMissing); an answer clears the flag."""
    with convai_calls(action=action, actor=actor, call=call, character=character, known=True):
        remote = client.get_character(character.convai_id)
    flag_found(character)
    return remote


def drift_of(*, character: Character, remote: CharacterDetails) -> list[FieldChange]:
    known = fields_from_snapshot(character.snapshot) or character.editable()
    return differences(known, fields_from_remote(remote))


def drift_refused(
    *,
    action: str,
    actor: Membership,
    character: Character,
    call: ConvaiCall,
    drift: list[FieldChange],
    remote: CharacterDetails,
) -> Drift:
    """An update or delete stopped by drift: one failure naming the drifted fields."""
    return refuse(
        action=action,
        actor=actor,
        error=Drift(drift, fields_from_remote(remote)),
        reason="drift",
        character=character,
        call=call,
        drifted=[change.field for change in drift],
        drift=audit_changes(drift),
    )


def claim_save(
    *, action: str, actor: Membership, character: Character, expected_version: int
) -> str:
    """Claim `expected_version` of the character for one save and return the claim's token.

    One conditional UPDATE in its own short transaction (no transaction is held open across
    the Convai call; SQLite has no row locks, so this is the portable compare-and-set): it
    succeeds only when the version is still the expected one and no live claim is held. A
    refusal is recorded: Conflict when the version moved, SaveInProgress when another save
    holds it."""
    token = uuid4().hex
    claimed = Character.objects.filter(
        Q(saving_token="") | Q(saving_since__lt=save_claim_expired_before()),
        pk=character.pk,
        version=expected_version,
        deleted_at__isnull=True,
    ).update(saving_token=token, saving_since=timezone.now(), saving_by=actor.user)
    if claimed:
        return token
    current = Character.objects.select_related("saving_by").get(pk=character.pk)
    if current.is_deleted:
        raise refuse(
            action=action,
            actor=actor,
            error=CharacterDeleted(),
            reason="deleted",
            character=current,
        )
    if current.version != expected_version:
        raise conflict_refused(
            action=action, actor=actor, character=current, expected_version=expected_version
        )
    raise refuse(
        action=action,
        actor=actor,
        error=SaveInProgress(current),
        reason="save in progress",
        character=current,
        version=expected_version,
    )


def release_save(*, character_pk: int, token: str) -> None:
    """Give a claim back (the save failed); a claim taken over meanwhile is left alone."""
    Character.objects.filter(pk=character_pk, saving_token=token).update(
        saving_token="", saving_since=None, saving_by=None
    )


def save_in_flight(character: Character) -> bool:
    """A save holds the character's version right now: a live claim, not one that a server
    which died mid-save left behind (those expire, see save_claim_expired_before)."""
    return bool(character.saving_token) and (
        character.saving_since is not None and character.saving_since >= save_claim_expired_before()
    )


def clear_claim(character: Character) -> None:
    character.saving_token = ""
    character.saving_since = None
    character.saving_by = None


def conflict_refused(
    *, action: str, actor: Membership, character: Character, expected_version: int
) -> Conflict:
    """A save stopped because a teammate saved since the form was opened: one failure."""
    latest = character.revisions.select_related("created_by").first()
    return refuse(
        action=action,
        actor=actor,
        error=Conflict(character, latest),
        reason="conflict",
        character=character,
        version=[expected_version, character.version],
    )


def begin_operation(
    *,
    actor: Membership,
    kind: str,
    token: str,
    name: str,
    api_key: ApiKey | None,
    fields: dict[str, Any] | None = None,
    character: Character | None = None,
) -> PendingOperation:
    """Write the intent down and commit it before Convai is called, so a request that dies
    mid-call leaves a trace that reconciliation resolves.

    `token` is the form's (made when the form was rendered): the same form sent again is the
    same operation, and Convai is never asked twice. Done: OperationDone; still pending:
    OperationPending; failed (it did not happen): claimed again for this attempt. Without a
    token (a caller with no form) each call is an operation of its own."""
    token = (token or "").strip()[:64] or uuid4().hex
    values = {
        "kind": kind,
        "name": name[:100],
        "api_key": api_key,
        "fields": fields or {},
        "character": character,
        "actor": actor.user,
    }
    try:
        with transaction.atomic():
            return PendingOperation.objects.create(team=actor.team, token=token, **values)
    except IntegrityError:
        pass
    existing = PendingOperation.objects.select_related("result", "character").get(
        team=actor.team, token=token
    )
    if existing.kind != kind:
        raise CharacterError("This form was already used for something else: open it again.")
    if existing.state == PendingOperation.State.FAILED:
        # It did not happen: this attempt takes the same operation over, once.
        retried = PendingOperation.objects.filter(
            pk=existing.pk, state=PendingOperation.State.FAILED
        ).update(
            **values,
            state=PendingOperation.State.PENDING,
            created_at=timezone.now(),
            finished_at=None,
            message="",
        )
        if retried:
            existing.refresh_from_db()
            return existing
        existing.refresh_from_db()
    if existing.state == PendingOperation.State.DONE:
        raise OperationDone(existing)
    raise OperationPending(existing)


def finish_operation(*, operation: PendingOperation, result: Character | None = None) -> None:
    """It happened: inside the transaction of the local change it made (both or neither).
    A success wins over an earlier "failed" guess of reconciliation."""
    PendingOperation.objects.filter(pk=operation.pk).update(
        state=PendingOperation.State.DONE,
        result=result,
        finished_at=timezone.now(),
        message="",
    )


def fail_operation(*, operation: PendingOperation, message: str) -> None:
    """It did not happen (Convai refused, or reconciliation found nothing)."""
    PendingOperation.objects.filter(pk=operation.pk, state=PendingOperation.State.PENDING).update(
        state=PendingOperation.State.FAILED, finished_at=timezone.now(), message=message[:300]
    )


@contextmanager
def convai_operation(operation: PendingOperation) -> Iterator[None]:
    """Around an operation's Convai write: a refusal marks it failed (it did not happen); a
    timeout leaves it pending (it may have happened: reconciliation finds out), as does a
    process that dies here."""
    try:
        yield
    except ConvaiFailed as error:
        if not error.maybe_happened:
            fail_operation(operation=operation, message=error.message)
        raise
    except CharacterError as error:
        fail_operation(operation=operation, message=error.message)
        raise


OPERATION_ACTIONS: dict[str, str] = {
    PendingOperation.Kind.CREATE: "character.create",
    PendingOperation.Kind.CLONE: "character.clone",
    PendingOperation.Kind.DELETE: "character.delete",
}
