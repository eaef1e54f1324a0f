"""Character operations: every Convai call, local write, revision and audit event lives here.

Each function is named after the operation, takes the acting `Membership` (keyword-only) and
explicit arguments, asks teams.policy again (a view is not the only caller) and acts on Convai
through the character's bound key, server-side: the member never sees the key. That is the
sharing.

Rules that hold for every operation:
- Nothing is stored locally for a Convai call that failed; the failure is recorded after the
  fact with Convai's status and message. A write that timed out may have happened: it is
  recorded with outcome `unknown`, and the message offers "Check Convai".
- A remote success is never lost: the local record, its revision and the audit event commit
  together; if that local write fails, the error names the Convai ID so "Check Convai" adopts it.
- Before an update or a delete the remote state is compared with the last snapshot (drift:
  someone edited it in Convai's playground); before an update the form's version is compared
  with ours (conflict: a teammate saved meanwhile). Both stop the save and keep the input.
- The version is a compare-and-set: a save claims it (claim_save, one conditional UPDATE)
  before calling Convai and finishes only while it owns the claim, so of two saves of one
  version exactly one reaches Convai. No transaction is held open across a Convai call.
- A create, clone or delete is written down (PendingOperation, under the form's token) and
  committed before Convai is called: the same form never reaches Convai twice, and a request
  that dies mid-call is resolved by reconcile_pending_operations. See docs/characters.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.context import audit_context, current
from audit.models import Outcome
from audit.services import record
from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRequestError, ConvaiTimeoutError
from convai.types import CharacterDetails, parse_moment
from convai_admin.errors import DomainError, NotFound
from keys.models import ApiKey
from keys.selectors import keys_by_account
from keys.services import ApiKeyUnusable, client_for
from teams import policy
from teams.models import Membership, Team

from .convai_messages import explain
from .history import restorable_fields, snapshot_changes
from .models import EDITABLE_FIELDS, Character, PendingOperation, Revision
from .remote import (
    FieldChange,
    audit_changes,
    differences,
    fields_from_remote,
    fields_from_snapshot,
    redact,
)
from .selectors import facets_cache_key

TARGET_TYPE = "character"
E = TypeVar("E", bound="CharacterError")


# --- Domain errors ------------------------------------------------------------------------------


class CharacterError(DomainError):
    """A character operation was refused or failed; the message says what to do next."""


class CharacterNotFound(NotFound):
    default_message = "That character does not exist in this team."


class CharacterDeleted(CharacterError):
    default_message = "This character was deleted; its page and history stay readable."


class NoUsableKey(CharacterError):
    default_message = (
        "This character has no usable API key: the key that owns it was revoked or its owner "
        "left the team. An Admin can rebind it to another member's key."
    )


class KeyNotUsable(CharacterError):
    """The chosen key is not one of the actor's own verified, active keys."""

    default_message = "Choose one of your own verified API keys."


class ConvaiFailed(CharacterError):
    """Convai refused or could not be reached; `maybe_happened` for a timed-out write."""

    def __init__(
        self, message: str, *, maybe_happened: bool = False, status: int | None = None
    ) -> None:
        self.maybe_happened = maybe_happened
        self.status = status
        super().__init__(message)


class Drift(CharacterError):
    """The remote character differs from our last snapshot (edited in Convai's playground)."""

    def __init__(self, changes: list[FieldChange], remote: dict[str, Any]) -> None:
        self.changes = changes
        self.remote = remote
        super().__init__(
            "This character was changed in Convai since it was last saved here: "
            + ", ".join(change.label for change in changes)
            + ". Review the differences, then overwrite them or take Convai's version."
        )


class Conflict(CharacterError):
    """A teammate saved the character after this form was opened."""

    def __init__(self, character: Character, revision: Revision | None) -> None:
        self.current = character.editable()
        self.version = character.version
        self.by = revision.created_by if revision is not None else None
        self.at = revision.created_at if revision is not None else character.updated_at
        who = self.by.display_name if self.by is not None else "Someone"
        super().__init__(
            f"{who} saved this character while you were editing it. Their version is shown "
            "next to yours; your input is kept. Merge what you need and save again."
        )


class SaveInProgress(Conflict):
    """Another save of this character is on its way to Convai right now (it holds the
    version): this one is stopped like any conflict, with the input kept."""

    def __init__(self, character: Character) -> None:
        self.current = character.editable()
        self.version = character.version
        self.by = character.saving_by
        self.at = character.saving_since or character.updated_at
        who = self.by.display_name if self.by is not None else "Someone"
        CharacterError.__init__(
            self,
            f"{who} is saving this character right now; their save has not finished. Your "
            "input is kept: save again in a moment, and you will see their changes first.",
        )


class OperationPending(CharacterError):
    """The same form (its token) was already sent and has not finished: Convai is not asked
    twice; the outcome is checked with Convai (reconcile_pending_operations)."""

    def __init__(self, operation: PendingOperation) -> None:
        self.operation = operation
        super().__init__(
            f"This {operation.get_kind_display().lower()} of “{operation.name}” was already "
            "sent to Convai and has not finished, so it was not sent again. If it does not "
            "finish, its outcome is checked with Convai automatically; “Check now” on the "
            "character list checks it at once."
        )


class OperationDone(CharacterError):
    """The same form (its token) was already sent and it succeeded: nothing is sent again."""

    def __init__(self, operation: PendingOperation) -> None:
        self.operation = operation
        self.character = operation.result or operation.character
        super().__init__(
            f"This {operation.get_kind_display().lower()} of “{operation.name}” was already "
            "done (the form was sent twice): nothing was sent to Convai again."
        )


class NotOwnedByKey(CharacterError):
    """Get found it, but the key's list does not have it: a public character of someone else."""


class AlreadyInTeam(CharacterError):
    def __init__(self, character: Character) -> None:
        self.character = character
        super().__init__(f"“{character.name}” is already in this team.")


class NameMismatch(CharacterError):
    default_message = "Type the character's name exactly as shown to confirm the deletion."


class RemoteMissing(CharacterError):
    """Convai no longer has the character (deleted there, behind our back). The record is
    flagged, never deleted silently: a member who may delete it removes it from the team."""

    default_message = (
        "This character no longer exists on Convai: it was deleted there (perhaps in Convai's "
        "playground), so it cannot be edited, cloned or deleted through Convai. Its page and "
        "history stay here; use “Remove from this team” to take it off the list."
    )


class StillOnConvai(CharacterError):
    default_message = (
        "Convai has this character after all, so it was not removed here. It works again; "
        "delete it on Convai through “Delete” if that is what you want."
    )


# --- Plumbing -----------------------------------------------------------------------------------


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
    action: str,
    actor: Actor,
    *,
    character: Character | None = None,
    convai_id: str = "",
    label: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one character event for the actor's team (target: the character, or a Convai ID
    and label when there is no record). Call it inside the transaction of the change it
    describes; a failure, after the rollback. A success refreshes the list's filter options."""
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
    if outcome == Outcome.SUCCESS:
        # The list's filter options (voices, languages, keys in use) may have changed.
        team_id = actor.team_id
        transaction.on_commit(lambda: cache.delete(facets_cache_key(team_id)))


def refuse(
    action: str,
    actor: Membership,
    error: E,
    reason: str,
    *,
    character: Character | None = None,
    label: str = "",
    call: ConvaiCall | None = None,
    **details: Any,
) -> E:
    """Record a refusal once, where it is made (after any rollback), and hand the error back
    for the caller to raise."""
    record_character_event(
        action,
        actor,
        character=character,
        label=label,
        outcome=Outcome.FAILURE,
        details=(call or ConvaiCall()).details(reason=reason, **details),
    )
    return error


def _flag_missing(character: Character) -> None:
    if character.remote_missing_at is None:
        character.remote_missing_at = timezone.now()
        Character.objects.filter(pk=character.pk).update(
            remote_missing_at=character.remote_missing_at
        )


def _flag_found(character: Character) -> None:
    if character.remote_missing_at is not None:
        character.remote_missing_at = None
        Character.objects.filter(pk=character.pk).update(remote_missing_at=None)


@contextmanager
def convai_calls(
    action: str,
    actor: Membership,
    call: ConvaiCall,
    *,
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
            action,
            actor,
            error,
            call=call,
            character=character,
            label=label,
            write=write,
            known=known,
        ) from None


def record_convai_failure(
    action: str,
    actor: Membership,
    error: ConvaiError,
    *,
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
            action,
            actor,
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
        _flag_missing(character)
        return refuse(
            action,
            actor,
            RemoteMissing(),
            "gone from Convai",
            character=character,
            call=call,
            **convai,
            **extra,
        )
    record_character_event(
        action,
        actor,
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
    actor: Membership, action: str, character: Character | None = None, *, event: str = ""
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


def character_for(actor: Membership, character_id: int, *, live: bool = True) -> Character:
    """The actor's team's character (CharacterNotFound otherwise: another team's is invisible);
    a deleted one only with `live=False`."""
    character = (
        Character.objects.select_related("bound_key", "bound_key__owner", "created_by")
        .filter(team=actor.team, pk=character_id)
        .first()
    )
    if character is None:
        raise CharacterNotFound()
    if live and character.is_deleted:
        raise CharacterDeleted()
    return character


def key_is_usable(character: Character) -> bool:
    """The bound key is active and its owner is still in the character's team."""
    api_key = character.bound_key
    if api_key is None or not api_key.is_active:
        return False
    return Membership.objects.filter(team_id=character.team_id, user_id=api_key.owner_id).exists()


def _bound_client(
    action: str, actor: Membership, character: Character, call: ConvaiCall
) -> ConvaiClient:
    """A client with the character's bound key; refused (and recorded) when it is not usable."""
    call.api_key = character.bound_key
    if not key_is_usable(character):
        raise refuse(action, actor, NoUsableKey(), "no usable key", character=character, call=call)
    assert character.bound_key is not None
    try:
        return client_for(character.bound_key, actor=actor.user)
    except ApiKeyUnusable as error:
        raise refuse(
            action,
            actor,
            NoUsableKey(error.message),
            "no usable key",
            character=character,
            call=call,
        ) from None


def own_key(action: str, actor: Membership, api_key_id: UUID | str, *, label: str) -> ApiKey:
    """One of the actor's own verified, active keys; anything else is refused and recorded."""
    try:
        return ApiKey.objects.get(
            pk=api_key_id, owner=actor.user, revoked_at__isnull=True, verified_at__isnull=False
        )
    except (ApiKey.DoesNotExist, ValueError, TypeError, ValidationError):
        raise refuse(action, actor, KeyNotUsable(), "key not usable", label=label) from None


def own_client(
    action: str, actor: Membership, api_key: ApiKey, call: ConvaiCall, *, label: str
) -> ConvaiClient:
    """A client with one of the actor's own keys (from own_key); refused and recorded when the
    key cannot be opened."""
    call.api_key = api_key
    try:
        return client_for(api_key, actor=actor.user)
    except ApiKeyUnusable as error:
        raise refuse(
            action, actor, KeyNotUsable(error.message), "key not usable", label=label, call=call
        ) from None


def snapshot_of(details: CharacterDetails) -> dict[str, Any]:
    """The whole remote payload as we keep it: third-party secrets redacted."""
    snapshot: dict[str, Any] = redact(details.raw)
    return snapshot


def _revision(character: Character, reason: str, user: User | None, *, note: str = "") -> Revision:
    return Revision.objects.create(
        character=character,
        number=character.version,
        reason=reason,
        fields=character.editable(),
        snapshot=character.snapshot,
        note=note[:200],
        created_by=user,
    )


def _apply(character: Character, fields: dict[str, Any]) -> None:
    for name in EDITABLE_FIELDS:
        if name in fields and fields[name] is not None:
            value = fields[name]
            setattr(character, name, list(value) if isinstance(value, list) else value)


def _local_write_failed(convai_id: str) -> CharacterError:
    return CharacterError(
        f"Convai saved the character (ID {convai_id}), but it could not be recorded here. "
        "Use “Check Convai” to adopt it; nothing was lost."
    )


# --- Pending operations: a create, clone or delete is written down before Convai is called ---


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


def finish_operation(operation: PendingOperation, result: Character | None = None) -> None:
    """It happened: inside the transaction of the local change it made (both or neither).
    A success wins over an earlier "failed" guess of reconciliation."""
    PendingOperation.objects.filter(pk=operation.pk).update(
        state=PendingOperation.State.DONE,
        result=result,
        finished_at=timezone.now(),
        message="",
    )


def fail_operation(operation: PendingOperation, message: str) -> None:
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
            fail_operation(operation, error.message)
        raise
    except CharacterError as error:
        fail_operation(operation, error.message)
        raise


# --- Create ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """A saved character, and what the user should know about how it went."""

    character: Character
    warnings: list[str] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    # Fields sent although not edited: Convai's drifted values overwritten with ours.
    overwritten: list[FieldChange] = field(default_factory=list)

    @property
    def sent_labels(self) -> list[str]:
        """Every field sent to Convai, edited or overwritten, in the order pages show them."""
        sent = {change.field: change.label for change in [*self.changes, *self.overwritten]}
        return [sent[name] for name in EDITABLE_FIELDS if name in sent]


def create_character(
    *,
    actor: Membership,
    api_key_id: UUID | str,
    name: str,
    voice_type: str,
    backstory: str,
    actions: list[str],
    language_codes: list[str],
    token: str = "",
) -> Saved:
    """Create on Convai under one of the actor's keys, then set its languages (create takes
    none), then read it back and store the record and its first revision.

    The intent is committed first (begin_operation, under the form's `token`) and finished
    with the record, so a request that dies mid-call is resolved by reconciliation and the
    same form sent twice never creates twice."""
    authorize(actor, "character.create")
    api_key = own_key("character.create", actor, api_key_id, label=name)
    call = ConvaiCall()
    client = own_client("character.create", actor, api_key, call, label=name)
    fields = {
        "name": name,
        "voice_type": voice_type,
        "backstory": backstory,
        "actions": actions,
        "language_codes": language_codes,
    }
    operation = begin_operation(
        actor=actor,
        kind=PendingOperation.Kind.CREATE,
        token=token,
        name=name,
        api_key=api_key,
        fields=fields,
    )
    with convai_operation(operation):
        created = create_on_convai("character.create", actor, call, client, fields, label=name)
    character = _store_for_operation(
        operation,
        actor=actor,
        convai_id=created.convai_id,
        api_key=api_key,
        fields=created.fields,
        snapshot=created.snapshot,
        reason=Revision.Reason.CREATED,
        action="character.create",
        call=call,
        pending_language_codes=created.pending_language_codes,
    )
    return Saved(character, created.warnings)


def _store_for_operation(operation: PendingOperation, **store: Any) -> Character:
    """store_new_character, finishing the operation in the same transaction. The team having
    the character already (reconciliation adopted it meanwhile) finishes it too."""
    try:
        return store_new_character(
            **store, also=lambda character: finish_operation(operation, character)
        )
    except AlreadyInTeam as error:
        finish_operation(operation, error.character)
        raise


@dataclass(frozen=True)
class Created:
    """A character Convai created, before it is stored here (store_new_character)."""

    convai_id: str
    fields: dict[str, Any]
    snapshot: dict[str, Any]
    pending_language_codes: list[str] | None
    warnings: list[str]


def create_on_convai(
    action: str,
    actor: Membership,
    call: ConvaiCall,
    client: ConvaiClient,
    fields: dict[str, Any],
    *,
    character: Character | None = None,
    label: str = "",
    what: str = "character",
) -> Created:
    """Create on Convai (a create, or a copy to another key), then set its languages (create
    takes none), then read it back: what Convai holds is the truth (it gives a character a
    default language, say). Languages Convai refused are kept as pending, with a warning."""
    with convai_calls(action, actor, call, character=character, label=label, write=True):
        convai_id = client.create_character(
            fields["name"], fields["voice_type"], fields["backstory"], fields["actions"]
        )
    warnings = []
    pending = None
    if fields["language_codes"]:
        try:
            client.update_character(convai_id, language_codes=fields["language_codes"])
        except ConvaiError as error:
            pending = list(fields["language_codes"])
            warnings.append(
                f"The {what} was created, but Convai did not take its languages "
                f"({error.message}). Use “Retry languages” on its page."
            )
    details = read_back(client, convai_id)
    stored = {**fields, "language_codes": [] if pending else fields["language_codes"]}
    if details is None:
        snapshot: dict[str, Any] = {
            "character_id": convai_id,
            "character_name": fields["name"],
            "voice_type": fields["voice_type"],
            "backstory": fields["backstory"],
            "character_actions": fields["actions"],
        }
    else:
        snapshot = snapshot_of(details)
        stored.update({k: v for k, v in fields_from_remote(details).items() if v is not None})
    return Created(convai_id, stored, snapshot, pending, warnings)


def read_back(client: ConvaiClient, convai_id: str) -> CharacterDetails | None:
    """Get after a write; None when Convai does not answer (the write itself went through)."""
    try:
        return client.get_character(convai_id)
    except ConvaiError:
        return None


def store_new_character(
    *,
    actor: Actor,
    convai_id: str,
    api_key: ApiKey,
    fields: dict[str, Any],
    snapshot: dict[str, Any],
    reason: str,
    action: str,
    call: ConvaiCall,
    pending_language_codes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    note: str = "",
    copied_from: Character | None = None,
    copied_from_revision: int | None = None,
    also: Callable[[Character], None] | None = None,
    credited_to: User | None = None,
) -> Character:
    """The local half of a remote success (create, import, clone, copy, a job's import): the
    record, its first revision (`reason`, `note`) and the `action` event (its editable fields
    but the backstory, and `extra`) commit together, with whatever `also` records about it.

    The team already having that Convai ID raises AlreadyInTeam; any other local failure names
    the Convai ID so "Check Convai" adopts it: a remote success is never lost. `credited_to`:
    the person the record and its first revision name, when not the actor (reconciliation)."""
    now = timezone.now()
    creator = credited_to if credited_to is not None else actor.user
    character = Character(
        team=actor.team,
        convai_id=convai_id,
        bound_key=api_key,
        created_by=creator,
        created_at=now,
        updated_at=now,
        synced_at=now,
        snapshot=snapshot,
        pending_language_codes=pending_language_codes,
        copied_from=copied_from,
        copied_from_revision=copied_from_revision,
    )
    _apply(character, fields)
    try:
        with transaction.atomic():
            character.save(force_insert=True)
            _revision(character, reason, creator, note=note)
            record_character_event(
                action,
                actor,
                character=character,
                details=call.details(
                    fields={k: v for k, v in character.editable().items() if k != "backstory"},
                    **(extra or {}),
                ),
            )
            if also is not None:
                also(character)
    except IntegrityError:
        existing = Character.objects.filter(
            team=actor.team, convai_id=convai_id, deleted_at__isnull=True
        ).first()
        if existing is not None:
            raise AlreadyInTeam(existing) from None
        raise _local_write_failed(convai_id) from None
    except DatabaseError:
        # Convai holds it, we could not write it down: say which ID to adopt, never lose it.
        raise _local_write_failed(convai_id) from None
    return character


# --- Update --------------------------------------------------------------------------------------


def _drift(character: Character, remote: CharacterDetails) -> list[FieldChange]:
    known = fields_from_snapshot(character.snapshot) or character.editable()
    return differences(known, fields_from_remote(remote))


def _drift_refused(
    action: str,
    actor: Membership,
    character: Character,
    call: ConvaiCall,
    drift: list[FieldChange],
    remote: CharacterDetails,
) -> Drift:
    """An update or delete stopped by drift: one failure naming the drifted fields."""
    return refuse(
        action,
        actor,
        Drift(drift, fields_from_remote(remote)),
        "drift",
        character=character,
        call=call,
        drifted=[change.field for change in drift],
        drift=audit_changes(drift),
    )


def _get_known(
    action: str, actor: Membership, call: ConvaiCall, client: ConvaiClient, character: Character
) -> CharacterDetails:
    """Get a character we hold, by its Convai ID, through its bound key. Convai answering that
    it has no such character flags the record (RemoteMissing); an answer clears the flag."""
    with convai_calls(action, actor, call, character=character, known=True):
        remote = client.get_character(character.convai_id)
    _flag_found(character)
    return remote


def update_character(
    *,
    actor: Membership,
    character_id: int,
    expected_version: int,
    fields: dict[str, Any],
    overwrite_drift: bool = False,
    reason: str = Revision.Reason.UPDATED,
    action: str = "character.update",
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> Saved:
    """Send only the changed fields, guarded against conflicts and drift, then read back.

    `reason`, `action`, `note` and `extra` (audit details) name what kind of save it is: a
    restore is an update like any other, told apart in the history and the audit log."""
    character = character_for(actor, character_id)
    authorize(actor, "character.update", character, event=action)
    if character.version != expected_version:
        raise _conflict_refused(action, actor, character, expected_version)
    changes = differences(character.editable(), fields)
    if not changes and not overwrite_drift:
        return Saved(character)
    if any(c.field == "language_codes" and not c.new for c in changes):
        raise CharacterError("Choose at least one language: a Convai character always speaks one.")
    call = ConvaiCall()
    client = _bound_client(action, actor, character, call)
    remote = _get_known(action, actor, call, client, character)
    drift = _drift(character, remote)
    if drift and not overwrite_drift:
        raise _drift_refused(action, actor, character, call, drift, remote)
    if not changes and not drift:  # "keep ours" with nothing to keep: Convai holds ours
        Character.objects.filter(pk=character.pk).update(remote_changed_at=None, remote_state=None)
        return Saved(character)
    sent = {change.field: change.new for change in changes}
    for change in drift:
        # Overwriting means our version of every drifted field, not only the edited ones.
        ours = fields.get(change.field)
        sent.setdefault(change.field, ours if ours is not None else change.old)
    # The version checked above was a read: claim it now (compare-and-set), so of two saves
    # opened at the same version exactly one reaches Convai; the other is a conflict.
    token = claim_save(action, actor, character, expected_version)
    try:
        with convai_calls(action, actor, call, character=character, write=True):
            client.update_character(character.convai_id, **sent)
        readback = read_back(client, character.convai_id)
    except BaseException:
        # Nothing is stored for a failed call. A timed-out write may have happened: then the
        # next save finds Convai's state differs from our snapshot (drift) and shows it.
        release_save(character.pk, token)
        raise
    warnings = []
    if readback is not None:
        stored = fields_from_remote(readback)
        unconfirmed = [c.label for c in differences(sent, stored, tuple(sent))]
        if unconfirmed:
            warnings.append(
                "Convai did not store everything that was sent: "
                + ", ".join(unconfirmed)
                + " read back differently. The page shows what Convai holds now."
            )
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        if locked.saving_token != token:
            lost = True
        else:
            lost = False
            _apply(locked, sent)
            if readback is not None:
                _apply(locked, fields_from_remote(readback))
                locked.snapshot = snapshot_of(readback)
            locked.version = locked.version + 1
            locked.updated_at = locked.synced_at = timezone.now()
            _clear_claim(locked)
            locked.clear_drift()
            locked.save()
            _revision(locked, reason, actor.user, note=note)
            record_character_event(
                action,
                actor,
                character=locked,
                details=call.details(
                    changes=audit_changes(changes),
                    **({"drift_overwritten": audit_changes(drift)} if drift else {}),
                    **({"unconfirmed": True} if warnings else {}),
                    **(extra or {}),
                ),
            )
    if lost:
        # Slower than a claim may live: it expired and another save may have taken it. Convai
        # has this write, our record does not: the next save shows it as a change in Convai.
        raise refuse(
            action,
            actor,
            CharacterError(
                "Convai took your changes, but the save took so long that it could not be "
                "recorded here safely. Open the character again: its edit form shows what "
                "Convai holds now as changes made in Convai."
            ),
            "save claim expired",
            character=locked,
            call=call,
            changes=audit_changes(changes),
        )
    locked.bound_key = character.bound_key
    edited = {change.field for change in changes}
    overwritten = [change for change in drift if change.field not in edited]
    return Saved(locked, warnings, changes, overwritten)


# --- Save claims: compare-and-set on the version -------------------------------------------------


def save_claim_expired_before() -> datetime:
    """Claims older than this were interrupted (the server died mid-save): a save may take
    them over, so a character is never locked for good (CHARACTER_SAVE_CLAIM_SECONDS: the
    client's longest write plus read-back, with a margin)."""
    return timezone.now() - timedelta(seconds=settings.CHARACTER_SAVE_CLAIM_SECONDS)


def claim_save(action: str, actor: Membership, character: Character, expected_version: int) -> str:
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
        raise refuse(action, actor, CharacterDeleted(), "deleted", character=current)
    if current.version != expected_version:
        raise _conflict_refused(action, actor, current, expected_version)
    raise refuse(
        action,
        actor,
        SaveInProgress(current),
        "save in progress",
        character=current,
        version=expected_version,
    )


def release_save(character_pk: int, token: str) -> None:
    """Give a claim back (the save failed); a claim taken over meanwhile is left alone."""
    Character.objects.filter(pk=character_pk, saving_token=token).update(
        saving_token="", saving_since=None, saving_by=None
    )


def _clear_claim(character: Character) -> None:
    character.saving_token = ""
    character.saving_since = None
    character.saving_by = None


def _conflict_refused(
    action: str, actor: Membership, character: Character, expected_version: int
) -> Conflict:
    """A save stopped because a teammate saved since the form was opened: one failure."""
    latest = character.revisions.select_related("created_by").first()
    return refuse(
        action,
        actor,
        Conflict(character, latest),
        "conflict",
        character=character,
        version=[expected_version, character.version],
    )


def take_remote_version(*, actor: Membership, character_id: int) -> Saved:
    """Sync from Convai: get the character and make Convai's state ours (apply_remote_state).
    `Saved.changes` lists what changed (empty: already in step). A character Convai no longer
    has is flagged (RemoteMissing), never deleted here."""
    character = character_for(actor, character_id)
    authorize(actor, "character.sync", character, event="character.sync")
    call = ConvaiCall()
    client = _bound_client("character.sync", actor, character, call)
    remote = _get_known("character.sync", actor, call, client, character)
    synced = apply_remote_state(actor=actor, character=character, remote=remote, call=call)
    if synced.outcome == SyncResult.DELETED:
        raise CharacterDeleted()
    return Saved(synced.character, [], synced.changes)


@dataclass(frozen=True)
class SyncResult:
    """What taking Convai's state did to one character."""

    UPDATED = "updated"  # something changed: version + 1 and a `synced` revision
    IN_STEP = "in_step"  # nothing changed: only the sync time
    DELETED = "deleted"  # deleted here meanwhile: nothing written
    SAVED_MEANWHILE = "saved_meanwhile"  # not the expected version: nothing written

    outcome: str
    character: Character
    field_changes: list[FieldChange] = field(default_factory=list)
    other_changes: list[FieldChange] = field(default_factory=list)

    @property
    def changes(self) -> list[FieldChange]:
        """The edited fields, then the other snapshot keys, that changed."""
        return self.field_changes + self.other_changes


def apply_remote_state(
    *,
    actor: Membership,
    character: Character,
    remote: CharacterDetails,
    call: ConvaiCall,
    expected_version: int | None = None,
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> SyncResult:
    """Make Convai's state of a character ours: the one rule behind "Sync from Convai" and
    Sync all. The whole snapshot is compared: a changed edited field, or any other key of the
    payload, is a change; only a change bumps the version and stores a `synced` revision
    (`note`). The gone-from-Convai flag is cleared; one `character.sync` event is recorded
    either way (`changes`, `in_step` when none, and `extra`).

    `expected_version`: the version the caller saw when it read Convai (a job reads many
    characters while teammates work); if it changed since, nothing is written and the outcome
    says SAVED_MEANWHILE. With it, an unchanged character costs one conditional update (no
    lock). Runs in its own atomic block, so a caller's transaction can take it in with its
    own writes (a job item's result)."""
    snapshot = snapshot_of(remote)
    remote_fields = fields_from_remote(remote)
    with transaction.atomic():
        if (
            expected_version is not None
            and snapshot == character.snapshot
            and not differences(character.editable(), remote_fields)
        ):
            # Unchanged (the common case in a job): one conditional update, no lock.
            now = timezone.now()
            unchanged = Character.objects.filter(
                pk=character.pk, version=expected_version, deleted_at__isnull=True
            )
            if unchanged.update(
                synced_at=now, remote_missing_at=None, remote_changed_at=None, remote_state=None
            ):
                character.synced_at, character.remote_missing_at = now, None
                character.clear_drift()
                _record_sync(actor, character, call, [], changed=False, extra=extra)
                return SyncResult(SyncResult.IN_STEP, character)
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.bound_key = character.bound_key
        if locked.is_deleted:
            return SyncResult(SyncResult.DELETED, locked)
        if expected_version is not None and locked.version != expected_version:
            return SyncResult(SyncResult.SAVED_MEANWHILE, locked)
        field_changes = differences(locked.editable(), remote_fields)
        other_changes: list[FieldChange] = list(snapshot_changes(locked.snapshot or {}, snapshot))
        changed = bool(field_changes or other_changes) or snapshot != locked.snapshot
        _apply(locked, remote_fields)
        locked.snapshot = snapshot
        locked.synced_at = timezone.now()
        locked.remote_missing_at = None
        locked.clear_drift()
        if changed:
            locked.version += 1
            locked.updated_at = locked.synced_at
        locked.save()
        if changed:
            _revision(locked, Revision.Reason.SYNCED, actor.user, note=note)
        changes = field_changes + other_changes
        _record_sync(actor, locked, call, changes, changed=changed, extra=extra)
    outcome = SyncResult.UPDATED if changed else SyncResult.IN_STEP
    return SyncResult(outcome, locked, field_changes, other_changes)


def _record_sync(
    actor: Membership,
    character: Character,
    call: ConvaiCall,
    changes: list[FieldChange],
    *,
    changed: bool,
    extra: dict[str, Any] | None,
) -> None:
    record_character_event(
        "character.sync",
        actor,
        character=character,
        details=call.details(
            changes=audit_changes(changes),
            **({} if changed else {"in_step": True}),
            **(extra or {}),
        ),
    )


def restore_revision(
    *,
    actor: Membership,
    character_id: int,
    number: int,
    expected_version: int,
    overwrite_drift: bool = False,
) -> Saved:
    """Put an earlier revision's fields back: an ordinary update through the conflict and
    drift guard (Conflict, Drift), stored as a `restored` revision and a `character.restore`
    event that name the version restored. Nothing to change is no save at all."""
    character = character_for(actor, character_id)
    authorize(actor, "character.restore", character)
    revision = Revision.objects.filter(character=character, number=number).first()
    if revision is None:
        raise CharacterError(f"This character has no version {number}.")
    return update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=expected_version,
        fields=restorable_fields(revision),
        overwrite_drift=overwrite_drift,
        reason=Revision.Reason.RESTORED,
        action="character.restore",
        note=f"version {number}",
        extra={"restored_from": number},
    )


def retry_language_codes(*, actor: Membership, character_id: int) -> Saved:
    """Send the language codes that failed after a create again."""
    character = character_for(actor, character_id)
    pending = list(character.pending_language_codes or [])
    if not pending:
        return Saved(character)
    authorize(actor, "character.update", character)
    call = ConvaiCall()
    client = _bound_client("character.update", actor, character, call)
    with convai_calls("character.update", actor, call, character=character, write=True):
        client.update_character(character.convai_id, language_codes=pending)
    readback = read_back(client, character.convai_id)
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        old = list(locked.language_codes)
        locked.language_codes = pending
        locked.pending_language_codes = None
        if readback is not None:
            locked.snapshot = snapshot_of(readback)
        locked.version += 1
        locked.updated_at = timezone.now()
        locked.save()
        _revision(locked, Revision.Reason.UPDATED, actor.user, note="languages set after create")
        record_character_event(
            "character.update",
            actor,
            character=locked,
            details=call.details(changes={"language_codes": [old, pending]}),
        )
    return Saved(locked)


# --- Get / import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A remote character found by ID or name, before importing it."""

    details: CharacterDetails
    api_key: ApiKey
    owned: bool
    existing: Character | None

    @property
    def fields(self) -> dict[str, Any]:
        return fields_from_remote(self.details)


def find_remote(
    *,
    actor: Membership,
    api_key_id: UUID | str,
    convai_id: str = "",
    name: str = "",
) -> Found:
    """Look a character up on Convai with one of the actor's keys (get), and tell whether the
    key owns it (its list has it) and whether the team already has it."""
    authorize(actor, "character.import")
    label = convai_id or name
    api_key = own_key("character.import", actor, api_key_id, label=label)
    call = ConvaiCall()
    client = own_client("character.import", actor, api_key, call, label=label)
    with convai_calls("character.import", actor, call, label=label):
        details = client.get_character(convai_id or None, name=name or None)
        owned_ids = {item.character_id for item in client.list_characters()}
    existing = Character.objects.filter(
        team=actor.team, convai_id=details.character_id, deleted_at__isnull=True
    ).first()
    return Found(details, api_key, details.character_id in owned_ids, existing)


def import_character(*, actor: Membership, api_key_id: UUID | str, convai_id: str) -> Saved:
    """Import a character the key owns into the team, with its first revision."""
    found = find_remote(actor=actor, api_key_id=api_key_id, convai_id=convai_id)
    call = ConvaiCall(api_key=found.api_key)
    if not found.owned:
        record_character_event(
            "character.import",
            actor,
            convai_id=found.details.character_id,
            label=found.details.character_name,
            outcome=Outcome.FAILURE,
            details=call.details(reason="not owned by this key"),
        )
        raise NotOwnedByKey(
            f"“{found.details.character_name}” is a public character of another Convai account: "
            f"your key “{found.api_key.label}” can read it but not change it. Import a character "
            "your own account owns (clone it in Convai first if you want a copy)."
        )
    if found.existing is not None:
        raise refuse(
            "character.import",
            actor,
            AlreadyInTeam(found.existing),
            "already in team",
            character=found.existing,
            call=call,
        )
    character = store_new_character(
        actor=actor,
        convai_id=found.details.character_id,
        api_key=found.api_key,
        fields=found.fields,
        snapshot=snapshot_of(found.details),
        reason=Revision.Reason.IMPORTED,
        action="character.import",
        call=call,
    )
    return Saved(character)


def record_existing(
    *, actor: Membership, api_key: ApiKey, details: CharacterDetails, origin_note: str = ""
) -> Character:
    """Store a character that Convai already holds under `api_key`, known from a payload we
    did not fetch through the client ourselves (the demo bootstrap's sandbox characters)."""
    authorize(actor, "character.import")
    return store_new_character(
        actor=actor,
        convai_id=details.character_id,
        api_key=api_key,
        fields=fields_from_remote(details),
        snapshot=snapshot_of(details),
        reason=Revision.Reason.IMPORTED,
        action="character.import",
        call=ConvaiCall(api_key=api_key),
        extra={"how": origin_note} if origin_note else None,
    )


def adopt_from_convai(*, actor: Membership, api_key_id: UUID | str, name: str) -> Saved:
    """After a create or clone that timed out: look for it in the key's list (by name, not yet
    in the team) and import the newest match."""
    authorize(actor, "character.import")
    api_key = own_key("character.import", actor, api_key_id, label=name)
    call = ConvaiCall()
    client = own_client("character.import", actor, api_key, call, label=name)
    with convai_calls("character.import", actor, call, label=name):
        items = client.list_characters()
    known = set(
        Character.objects.filter(team=actor.team, deleted_at__isnull=True).values_list(
            "convai_id", flat=True
        )
    )
    matches = [i for i in items if i.character_name == name and i.character_id not in known]
    if not matches:
        raise CharacterError(
            f"Convai has no character called “{name}” under “{api_key.label}” that is not "
            "already in this team: the earlier attempt did not create it. You can try again."
        )
    newest = max(matches, key=lambda item: item.timestamp)
    return import_character(actor=actor, api_key_id=api_key.pk, convai_id=newest.character_id)


# --- Clone ---------------------------------------------------------------------------------------


def clone_character(
    *,
    actor: Membership,
    character_id: int,
    new_name: str,
    include_kb: bool = False,
    token: str = "",
) -> Saved:
    """Copy on Convai under the character's bound key, name the copy, store it. Written down
    first like a create (begin_operation), so a dead request is reconciled, never repeated."""
    source = character_for(actor, character_id)
    authorize(actor, "character.clone", source)
    call = ConvaiCall()
    client = _bound_client("character.clone", actor, source, call)
    assert source.bound_key is not None
    operation = begin_operation(
        actor=actor,
        kind=PendingOperation.Kind.CLONE,
        token=token,
        name=new_name.strip() or f"{source.name} (copy)",
        api_key=source.bound_key,
        fields={"source_name": source.name, "include_kb": include_kb},
        character=source,
    )
    with (
        convai_operation(operation),
        convai_calls("character.clone", actor, call, character=source, write=True),
    ):
        try:
            convai_id = client.clone_character(source.convai_id, include_kb=include_kb)
        except ConvaiRequestError as error:
            if means_gone(error):
                # Convai's refusal to copy an ID it does not have: a get tells for sure (and
                # raises RemoteMissing); if the get finds it, the clone's own error stands.
                _get_known("character.clone", actor, call, client, source)
            raise
    warnings = []
    new_name = new_name.strip() or f"{source.name} (copy)"
    try:
        client.update_character(convai_id, name=new_name)
    except ConvaiError as error:
        warnings.append(f"The copy was made but could not be renamed ({error.message}).")
        new_name = source.name
    details = read_back(client, convai_id)
    fields = {**source.editable(), "name": new_name}
    if details is not None:
        fields = fields_from_remote(details)
        if fields["backstory"] is None:
            fields["backstory"] = source.backstory
    character = _store_for_operation(
        operation,
        actor=actor,
        convai_id=convai_id,
        api_key=source.bound_key,
        fields=fields,
        snapshot=snapshot_of(details) if details is not None else {"character_id": convai_id},
        reason=Revision.Reason.CLONED,
        action="character.clone",
        call=call,
        extra={"source": source.convai_id, "source_name": source.name, "kb": include_kb},
    )
    return Saved(character, warnings)


# --- Delete --------------------------------------------------------------------------------------


def remote_drift(*, actor: Membership, character_id: int) -> list[FieldChange]:
    """The differences between Convai and our last snapshot, for a confirmation to show."""
    character = character_for(actor, character_id)
    authorize(actor, "character.view", character)
    call = ConvaiCall()
    client = _bound_client("character.get", actor, character, call)
    remote = _get_known("character.get", actor, call, client, character)
    return _drift(character, remote)


def delete_character(
    *,
    actor: Membership,
    character_id: int,
    confirm_name: str,
    overwrite_drift: bool = False,
    token: str = "",
) -> Character:
    """Delete on Convai (irreversible) and leave a tombstone here. The intent is committed
    first (begin_operation) and the version claimed (no save runs meanwhile), so a request
    that dies mid-call is reconciled and the same form sent twice deletes once."""
    character = character_for(actor, character_id)
    authorize(actor, "character.delete", character)
    if confirm_name.strip() != character.name:
        raise refuse(
            "character.delete", actor, NameMismatch(), "name mismatch", character=character
        )
    call = ConvaiCall()
    client = _bound_client("character.delete", actor, character, call)
    # First, so the same form sent again is recognised before anything is asked of Convai.
    operation = begin_operation(
        actor=actor,
        kind=PendingOperation.Kind.DELETE,
        token=token,
        name=character.name,
        api_key=character.bound_key,
        character=character,
    )
    try:
        remote = _get_known("character.delete", actor, call, client, character)
        drift = _drift(character, remote)
        if drift and not overwrite_drift:
            raise _drift_refused("character.delete", actor, character, call, drift, remote)
        claim = claim_save("character.delete", actor, character, character.version)
    except CharacterError as error:
        # Nothing was sent: the same form may be sent again (after the drift, say).
        fail_operation(operation, error.message)
        raise
    try:
        with (
            convai_operation(operation),
            convai_calls("character.delete", actor, call, character=character, write=True),
        ):
            client.delete_character(character.convai_id)
    except BaseException:
        release_save(character.pk, claim)
        raise
    return _tombstone(
        actor,
        character,
        operation,
        snapshot=snapshot_of(remote),
        details=call.details(**({"drift_overwritten": audit_changes(drift)} if drift else {})),
    )


def _tombstone(
    actor: Actor,
    character: Character,
    operation: PendingOperation,
    *,
    snapshot: dict[str, Any] | None,
    details: dict[str, Any],
    note: str = "",
) -> Character:
    """The local half of a delete Convai did: tombstone, revision, event and the operation
    finished, together."""
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.deleted_at = timezone.now()
        locked.deleted_by = operation.actor if isinstance(actor, SystemActor) else actor.user
        if snapshot is not None:
            locked.snapshot = snapshot
        locked.version += 1
        _clear_claim(locked)
        locked.save()
        _revision(locked, Revision.Reason.DELETED, locked.deleted_by, note=note)
        record_character_event("character.delete", actor, character=locked, details=details)
        finish_operation(operation, locked)
    return locked


def remove_missing_character(*, actor: Membership, character_id: int) -> Character:
    """Tombstone a character Convai no longer has, without asking Convai to delete it.

    Only for a record flagged by Convai's own answer; when the bound key still works Convai
    is asked once more, and a character it does have is not removed (the flag is cleared)."""
    character = character_for(actor, character_id)
    authorize(actor, "character.delete", character)
    call = ConvaiCall(api_key=character.bound_key)
    if character.remote_missing_at is None:
        raise refuse(
            "character.delete",
            actor,
            CharacterError(
                "Convai still has this character as far as we know: delete it through "
                "“Delete”, which deletes it on Convai too."
            ),
            "still on Convai",
            character=character,
        )
    if key_is_usable(character):
        client = _bound_client("character.delete", actor, character, call)
        with convai_calls("character.delete", actor, call, character=character):
            try:
                client.get_character(character.convai_id)
            except ConvaiRequestError as error:
                if not means_gone(error):
                    raise
            else:
                _flag_found(character)
                raise refuse(
                    "character.delete",
                    actor,
                    StillOnConvai(),
                    "still on Convai",
                    character=character,
                    call=call,
                )
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.deleted_at = timezone.now()
        locked.deleted_by = actor.user
        locked.version += 1
        locked.save()
        _revision(locked, Revision.Reason.DELETED, actor.user, note="already gone from Convai")
        record_character_event(
            "character.delete",
            actor,
            character=locked,
            details=call.details(remote="already gone"),
        )
    return locked


# --- Rebind --------------------------------------------------------------------------------------


def rebind_candidates(team_id: int, current: ApiKey | None = None) -> list[ApiKey]:
    """Verified, active keys of the team's current members; with `current` (the bound key),
    those of its Convai account first (keys.selectors.keys_by_account)."""
    members = Membership.objects.filter(team_id=team_id).values("user_id")
    candidates = (
        ApiKey.objects.filter(
            owner_id__in=members, revoked_at__isnull=True, verified_at__isnull=False
        )
        .select_related("owner")
        .order_by("owner__username", "label")
    )
    return keys_by_account(candidates, current)


def rebind_character(*, actor: Membership, character_id: int, api_key_id: UUID | str) -> Saved:
    """Bind the character to another member's verified key, after checking that key reaches
    it and its account owns it (get, then list)."""
    character = character_for(actor, character_id)
    authorize(actor, "character.rebind", character)
    api_key = next(
        (k for k in rebind_candidates(actor.team_id) if str(k.pk) == str(api_key_id)), None
    )
    if api_key is None:
        raise refuse(
            "character.rebind",
            actor,
            KeyNotUsable("Choose a verified API key of a current member of this team."),
            "key not usable",
            character=character,
        )
    call = ConvaiCall(api_key=api_key)
    try:
        client = client_for(api_key, actor=actor.user)
    except ApiKeyUnusable as error:
        raise refuse(
            "character.rebind",
            actor,
            KeyNotUsable(error.message),
            "key not usable",
            character=character,
            call=call,
        ) from None
    with convai_calls("character.rebind", actor, call, character=character):
        try:
            remote = client.get_character(character.convai_id)
        except ConvaiRequestError as error:
            # Another account's key: Convai does not show it this character.
            raise refuse(
                "character.rebind",
                actor,
                KeyNotUsable(explain(error, key=key_label(api_key), rebind=True)),
                "key cannot reach it",
                character=character,
                call=call,
                convai_status=error.status,
                convai_message=error.remote_message or error.message,
            ) from None
        owned = any(i.character_id == character.convai_id for i in client.list_characters())
    if not owned:
        raise refuse(
            "character.rebind",
            actor,
            KeyNotUsable(
                f"“{api_key.label}” can read this character but its Convai account does not "
                "own it, so edits would fail. Choose a key of the account that created it."
            ),
            "key's account does not own it",
            character=character,
            call=call,
        )
    old = key_label(character.bound_key)
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.bound_key = api_key
        locked.snapshot = snapshot_of(remote)
        locked.synced_at = timezone.now()
        locked.remote_missing_at = None
        locked.version += 1
        locked.save(
            update_fields=["bound_key", "snapshot", "synced_at", "remote_missing_at", "version"]
        )
        _revision(locked, Revision.Reason.REBOUND, actor.user, note=f"now {key_label(api_key)}")
        record_character_event(
            "character.rebind",
            actor,
            character=locked,
            details=call.details(bound_key=[old, key_label(api_key)]),
        )
    return Saved(locked)


# --- Reconciliation: resolve the operations whose request died -----------------------------------


class Resolution:
    ADOPTED = "adopted"  # create/clone: Convai made it; stored here now
    DELETED = "deleted"  # delete: Convai no longer has it; the tombstone is written now
    FAILED = "failed"  # it did not happen
    DONE = "done"  # finished meanwhile (by its own request)
    UNKNOWN = "unknown"  # Convai could not tell yet (unreachable, key unusable): try later


def operation_overdue_before() -> datetime:
    """Pending operations started before this have outlived any request (the client's longest
    calls): their request is over, whatever happened to it."""
    return timezone.now() - timedelta(seconds=settings.CONVAI_REQUEST_SECONDS)


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
            outcome = resolve_operation(operation, actor=SystemActor(operation.team))
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


OPERATION_KEEP_DAYS = 30


def check_operation(*, actor: Membership, operation_id: int) -> tuple[PendingOperation, str]:
    """ "Check now" on an operation whose outcome is unknown: whoever may do the operation
    may ask Convai at once. Returns the operation as it stands and the resolution."""
    operation = (
        PendingOperation.objects.filter(team=actor.team, pk=operation_id)
        .select_related("team", "api_key", "character", "actor", "result")
        .first()
    )
    if operation is None:
        raise NotFound("There is no such operation in this team.")
    action = OPERATION_ACTIONS[operation.kind]
    authorize(actor, action, operation.character if operation.kind != "create" else None)
    if operation.state != PendingOperation.State.PENDING:
        return operation, Resolution.DONE
    outcome = resolve_operation(operation, actor=actor)
    operation.refresh_from_db()
    return operation, outcome


OPERATION_ACTIONS: dict[str, str] = {
    PendingOperation.Kind.CREATE: "character.create",
    PendingOperation.Kind.CLONE: "character.clone",
    PendingOperation.Kind.DELETE: "character.delete",
}


def resolve_operation(operation: PendingOperation, *, actor: Actor) -> str:
    """Ask Convai what became of one pending operation and settle it here. "Not there" is
    only concluded once the operation's own request must be over (operation_overdue_before):
    before that, it may still be on its way."""
    action = OPERATION_ACTIONS[operation.kind]
    api_key = operation.api_key
    if api_key is None or not api_key.is_active:
        return Resolution.UNKNOWN
    try:
        client = client_for(api_key, actor=None)
    except ApiKeyUnusable:
        return Resolution.UNKNOWN
    call = ConvaiCall(api_key=api_key)
    details = {"recovered": True, "operation": operation.pk, "for": _for_whom(operation)}
    overdue = operation.created_at <= operation_overdue_before()
    try:
        if operation.kind == PendingOperation.Kind.DELETE:
            return _resolve_delete(operation, actor, client, call, details, overdue)
        return _resolve_made(operation, actor, client, call, details, overdue, action)
    except ConvaiError:
        return Resolution.UNKNOWN


def _for_whom(operation: PendingOperation) -> str:
    return operation.actor.display_name if operation.actor is not None else ""


def _resolve_delete(
    operation: PendingOperation,
    actor: Actor,
    client: ConvaiClient,
    call: ConvaiCall,
    details: dict[str, Any],
    overdue: bool,
) -> str:
    character = operation.character
    if character is None:
        fail_operation(operation, "The character is no longer recorded here.")
        return Resolution.FAILED
    if character.is_deleted:
        finish_operation(operation, character)
        return Resolution.DONE
    try:
        client.get_character(character.convai_id)
    except ConvaiRequestError as error:
        if not means_gone(error):
            raise
        _tombstone(
            actor,
            character,
            operation,
            snapshot=None,
            details=call.details(**details),
            note="finished after an interrupted delete",
        )
        return Resolution.DELETED
    if not overdue:
        return Resolution.UNKNOWN
    fail_operation(operation, "Convai still has the character: the delete did not happen.")
    return Resolution.FAILED


def _resolve_made(
    operation: PendingOperation,
    actor: Actor,
    client: ConvaiClient,
    call: ConvaiCall,
    details: dict[str, Any],
    overdue: bool,
    action: str,
) -> str:
    """A create or clone: find the character Convai made, by name, created at or after the
    operation (Convai's timestamps are whole seconds without a zone: a small tolerance), not
    already in the team nor adopted by another operation; the earliest match is adopted."""
    names = {operation.name}
    if operation.kind == PendingOperation.Kind.CLONE:
        # A copy keeps its source's name until it is renamed, which may not have happened.
        names.add(str(operation.fields.get("source_name") or ""))
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
        adopted = _adopted_meanwhile(operation, names)
        if adopted is not None:
            # "Check Convai" (adopt_from_convai) or an import took it in already.
            finish_operation(operation, adopted)
            return Resolution.DONE
        if not overdue:
            return Resolution.UNKNOWN
        fail_operation(
            operation,
            f"Convai has no character called “{operation.name}” made then: it was not created.",
        )
        return Resolution.FAILED
    _, convai_id = min(matches)
    remote = client.get_character(convai_id)
    reason = (
        Revision.Reason.CLONED
        if operation.kind == PendingOperation.Kind.CLONE
        else Revision.Reason.CREATED
    )
    assert operation.api_key is not None
    try:
        _store_for_operation(
            operation,
            actor=actor,
            convai_id=convai_id,
            api_key=operation.api_key,
            fields=fields_from_remote(remote),
            snapshot=snapshot_of(remote),
            reason=reason,
            action=action,
            call=call,
            extra=details,
            note=f"recovered after an interrupted {operation.get_kind_display().lower()}",
            credited_to=operation.actor,
        )
    except AlreadyInTeam:
        return Resolution.DONE
    return Resolution.ADOPTED


def _adopted_meanwhile(operation: PendingOperation, names: set[str]) -> Character | None:
    """A character of the team, through the operation's key and by one of its names, stored
    here after the operation started and not the result of another operation."""
    results = PendingOperation.objects.filter(result__isnull=False).values("result")
    return (
        Character.objects.filter(
            team=operation.team,
            bound_key=operation.api_key,
            name__in=names,
            created_at__gte=operation.created_at,
            deleted_at__isnull=True,
        )
        .exclude(pk__in=results)
        .order_by("created_at")
        .first()
    )


def pending_operations(team: Team) -> list[PendingOperation]:
    """The team's operations still pending, oldest first, each marked `overdue` when its
    request must be over (shown "Outcome unknown: check Convai")."""
    overdue_before = operation_overdue_before()
    operations = list(
        PendingOperation.objects.filter(team=team, state=PendingOperation.State.PENDING)
        .select_related("actor", "character")
        .order_by("created_at", "pk")[:20]
    )
    for operation in operations:
        operation.overdue = operation.created_at <= overdue_before  # type: ignore[attr-defined]
    return operations
