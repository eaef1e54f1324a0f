"""Character operations: create, edit (update, restore, retry languages), sync from Convai and
delete one character. Their siblings, built the same way on the same plumbing
(characters.operations, characters.records): characters.copying (clone, copy to another key),
characters.importing (import, adopt), characters.binding (rebind), characters.reconciliation
(interrupted operations), characters.drift (keep ours / take Convai's).

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
  that dies mid-call is resolved by reconciliation.reconcile_pending_operations. See
  docs/characters.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from convai.client import ConvaiClient
from convai.errors import ConvaiRequestError
from convai.types import CharacterDetails
from teams.models import Membership

from .errors import (
    CharacterDeleted,
    CharacterError,
    NameMismatch,
    StillOnConvai,
)
from .history import restorable_fields
from .models import EDITABLE_FIELDS, Character, PendingOperation, Revision
from .operations import (
    ConvaiCall,
    add_revision,
    apply_fields,
    authorize,
    begin_operation,
    bound_client,
    claim_save,
    clear_claim,
    conflict_refused,
    convai_calls,
    convai_operation,
    drift_of,
    drift_refused,
    fail_operation,
    flag_found,
    get_known,
    means_gone,
    own_client,
    own_key,
    record_character_event,
    refuse,
    release_save,
    snapshot_of,
)
from .records import (
    SyncResult,
    apply_remote_state,
    create_on_convai,
    read_back,
    store_for_operation,
    tombstone,
)
from .remote import (
    FieldChange,
    audit_changes,
    differences,
    fields_from_remote,
)
from .selectors import character_for, key_is_usable


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
    authorize(actor=actor, action="character.create")
    api_key = own_key(action="character.create", actor=actor, api_key_id=api_key_id, label=name)
    call = ConvaiCall()
    client = own_client(
        action="character.create", actor=actor, api_key=api_key, call=call, label=name
    )
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
        created = create_on_convai(
            action="character.create",
            actor=actor,
            call=call,
            client=client,
            fields=fields,
            label=name,
        )
    character = store_for_operation(
        operation=operation,
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
    authorize(actor=actor, action="character.update", character=character, event=action)
    if character.version != expected_version:
        raise conflict_refused(
            action=action, actor=actor, character=character, expected_version=expected_version
        )
    changes = differences(character.editable(), fields)
    if not changes and not overwrite_drift:
        return Saved(character)
    if any(c.field == "language_codes" and not c.new for c in changes):
        raise CharacterError("Choose at least one language: a Convai character always speaks one.")
    call = ConvaiCall()
    client = bound_client(action=action, actor=actor, character=character, call=call)
    remote = get_known(action=action, actor=actor, call=call, client=client, character=character)
    drift = drift_of(character=character, remote=remote)
    if drift and not overwrite_drift:
        raise drift_refused(
            action=action, actor=actor, character=character, call=call, drift=drift, remote=remote
        )
    if not changes and not drift:  # "keep ours" with nothing to keep: Convai holds ours
        Character.objects.filter(pk=character.pk).update(remote_changed_at=None, remote_state=None)
        return Saved(character)
    sent = _fields_to_send(changes=changes, drift=drift, fields=fields)
    save = _Save(action=action, actor=actor, character=character, call=call)
    token, readback = _claim_and_send(
        save=save, client=client, sent=sent, expected_version=expected_version
    )
    warnings = _unconfirmed(sent=sent, readback=readback)
    details = call.details(
        changes=audit_changes(changes),
        **({"drift_overwritten": audit_changes(drift)} if drift else {}),
        **({"unconfirmed": True} if warnings else {}),
        **(extra or {}),
    )
    locked = _store_update(
        save=save,
        token=token,
        sent=sent,
        readback=readback,
        revision=(reason, note),
        details=details,
        changes=changes,
    )
    locked.bound_key = character.bound_key
    edited = {change.field for change in changes}
    overwritten = [change for change in drift if change.field not in edited]
    return Saved(locked, warnings, changes, overwritten)


def _fields_to_send(
    *, changes: list[FieldChange], drift: list[FieldChange], fields: dict[str, Any]
) -> dict[str, Any]:
    """The edited fields, and, when drift is overwritten, our version of every drifted field
    (not only the edited ones)."""
    sent = {change.field: change.new for change in changes}
    for change in drift:
        ours = fields.get(change.field)
        sent.setdefault(change.field, ours if ours is not None else change.old)
    return sent


@dataclass(frozen=True)
class _Save:
    """One save on its way: who saves which character, audited as `action` with `call`."""

    action: str
    actor: Membership
    character: Character
    call: ConvaiCall


def _claim_and_send(
    *, save: _Save, client: ConvaiClient, sent: dict[str, Any], expected_version: int
) -> tuple[str, CharacterDetails | None]:
    """Claim the version, send the update and read it back: the claim's token and what
    Convai holds now.

    The version checked before was a read: claiming it (compare-and-set) makes of two saves
    opened at the same version exactly one reach Convai; the other is a conflict. A failure
    gives the claim back. Nothing is stored for a failed call. A timed-out write may have
    happened: then the next save finds Convai's state differs from our snapshot (drift)."""
    action, actor, character, call = save.action, save.actor, save.character, save.call
    token = claim_save(
        action=action, actor=actor, character=character, expected_version=expected_version
    )
    try:
        with convai_calls(action=action, actor=actor, call=call, character=character, write=True):
            client.update_character(character.convai_id, **sent)
        return token, read_back(client=client, convai_id=character.convai_id)
    except BaseException:
        release_save(character_pk=character.pk, token=token)
        raise


def _unconfirmed(*, sent: dict[str, Any], readback: CharacterDetails | None) -> list[str]:
    """A warning when Convai read back differently from what was sent."""
    if readback is None:
        return []
    stored = fields_from_remote(readback)
    unconfirmed = [c.label for c in differences(sent, stored, tuple(sent))]
    if not unconfirmed:
        return []
    return [
        "Convai did not store everything that was sent: "
        + ", ".join(unconfirmed)
        + " read back differently. The page shows what Convai holds now."
    ]


def _store_update(
    *,
    save: _Save,
    token: str,
    sent: dict[str, Any],
    readback: CharacterDetails | None,
    revision: tuple[str, str],
    details: dict[str, Any],
    changes: list[FieldChange],
) -> Character:
    """The local half of an update: record, revision (`revision`: its reason and note) and
    event together, only while the save still owns its claim. A save slower than a claim may
    live lost it (another save may have taken it): Convai has this write, our record does
    not, and the next save shows it as a change in Convai."""
    action, actor, character = save.action, save.actor, save.character
    reason, note = revision
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        lost = locked.saving_token != token
        if not lost:
            apply_fields(character=locked, fields=sent)
            if "language_codes" in sent:  # chosen now: a create's failed list is moot
                locked.pending_language_codes = None
            if readback is not None:
                apply_fields(character=locked, fields=fields_from_remote(readback))
                locked.snapshot = snapshot_of(readback)
            locked.version = locked.version + 1
            locked.updated_at = locked.synced_at = timezone.now()
            clear_claim(locked)
            locked.clear_drift()
            locked.save()
            add_revision(character=locked, reason=reason, user=actor.user, note=note)
            record_character_event(action=action, actor=actor, character=locked, details=details)
    if lost:
        raise _claim_lost(save=save, locked=locked, changes=changes)
    return locked


def _claim_lost(*, save: _Save, locked: Character, changes: list[FieldChange]) -> CharacterError:
    """A save slower than a claim may live: Convai has its write, our record does not."""
    return refuse(
        action=save.action,
        actor=save.actor,
        error=CharacterError(
            "Convai took your changes, but the save took so long that it could not be "
            "recorded here safely. Open the character again: its edit form shows what "
            "Convai holds now as changes made in Convai."
        ),
        reason="save claim expired",
        character=locked,
        call=save.call,
        changes=audit_changes(changes),
    )


def take_remote_version(*, actor: Membership, character_id: int) -> Saved:
    """Sync from Convai: get the character and make Convai's state ours (apply_remote_state).
    `Saved.changes` lists what changed (empty: already in step). A character Convai no longer
    has is flagged (RemoteMissing), never deleted here. A save here between the read and the
    write (or on its way to Convai) stops the sync: what was read may predate it."""
    character = character_for(actor, character_id)
    authorize(actor=actor, action="character.sync", character=character, event="character.sync")
    call = ConvaiCall()
    client = bound_client(action="character.sync", actor=actor, character=character, call=call)
    remote = get_known(
        action="character.sync", actor=actor, call=call, client=client, character=character
    )
    synced = apply_remote_state(
        actor=actor,
        character=character,
        remote=remote,
        call=call,
        expected_version=character.version,
    )
    if synced.outcome == SyncResult.DELETED:
        raise CharacterDeleted()
    if synced.outcome == SyncResult.SAVED_MEANWHILE:
        raise refuse(
            action="character.sync",
            actor=actor,
            error=CharacterError(
                "A teammate saved this character while it was read from Convai, so nothing "
                "was taken: what was read may predate their save. Sync again to compare with "
                "Convai now."
            ),
            reason="saved meanwhile",
            character=synced.character,
            call=call,
        )
    return Saved(synced.character, [], synced.changes)


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
    authorize(actor=actor, action="character.restore", character=character)
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
    """Send the language codes that failed after a create again: only the languages, under a
    claimed version (a save on its way stops it, and it stops a save meanwhile), then read
    back. Any save that sends languages clears the pending list; so does this one, or finding
    that the record already has them."""
    character = character_for(actor, character_id)
    pending = list(character.pending_language_codes or [])
    if not pending:
        return Saved(character)
    authorize(actor=actor, action="character.update", character=character)
    if list(character.language_codes) == pending:
        Character.objects.filter(pk=character.pk, version=character.version).update(
            pending_language_codes=None
        )
        character.pending_language_codes = None
        return Saved(character)
    call = ConvaiCall()
    client = bound_client(action="character.update", actor=actor, character=character, call=call)
    save = _Save(action="character.update", actor=actor, character=character, call=call)
    sent = {"language_codes": pending}
    token, readback = _claim_and_send(
        save=save, client=client, sent=sent, expected_version=character.version
    )
    changes = differences(character.editable(), {**character.editable(), **sent})
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        lost = locked.saving_token != token
        if not lost:
            locked.language_codes = pending
            locked.pending_language_codes = None
            if readback is not None:
                locked.snapshot = snapshot_of(readback)
            locked.version += 1
            locked.updated_at = timezone.now()
            clear_claim(locked)
            locked.save()
            add_revision(
                character=locked,
                reason=Revision.Reason.UPDATED,
                user=actor.user,
                note="languages set after create",
            )
            record_character_event(
                action="character.update",
                actor=actor,
                character=locked,
                details=call.details(changes=audit_changes(changes)),
            )
    if lost:
        raise _claim_lost(save=save, locked=locked, changes=changes)
    return Saved(locked)


def remote_drift(*, actor: Membership, character_id: int) -> list[FieldChange]:
    """The differences between Convai and our last snapshot, for a confirmation to show."""
    character = character_for(actor, character_id)
    authorize(actor=actor, action="character.view", character=character)
    call = ConvaiCall()
    client = bound_client(action="character.get", actor=actor, character=character, call=call)
    remote = get_known(
        action="character.get", actor=actor, call=call, client=client, character=character
    )
    return drift_of(character=character, remote=remote)


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
    authorize(actor=actor, action="character.delete", character=character)
    if confirm_name.strip() != character.name:
        raise refuse(
            action="character.delete",
            actor=actor,
            error=NameMismatch(),
            reason="name mismatch",
            character=character,
        )
    call = ConvaiCall()
    client = bound_client(action="character.delete", actor=actor, character=character, call=call)
    # First, so the same form sent again is recognised before anything is asked of Convai.
    operation = begin_operation(
        actor=actor,
        kind=PendingOperation.Kind.DELETE,
        token=token,
        name=character.name,
        api_key=character.bound_key,
        character=character,
    )
    save = _Save(action="character.delete", actor=actor, character=character, call=call)
    remote, drift, claim = _ready_to_delete(
        save=save, client=client, operation=operation, overwrite_drift=overwrite_drift
    )
    try:
        with (
            convai_operation(operation),
            convai_calls(
                action="character.delete", actor=actor, call=call, character=character, write=True
            ),
        ):
            client.delete_character(character.convai_id)
    except BaseException:
        release_save(character_pk=character.pk, token=claim)
        raise
    return tombstone(
        actor=actor,
        character=character,
        operation=operation,
        snapshot=snapshot_of(remote),
        details=call.details(**({"drift_overwritten": audit_changes(drift)} if drift else {})),
    )


def _ready_to_delete(
    *, save: _Save, client: ConvaiClient, operation: PendingOperation, overwrite_drift: bool
) -> tuple[CharacterDetails, list[FieldChange], str]:
    """Before a delete: Convai's state (drift stops it unless overwritten) and the claimed
    version, with the claim's token. A refusal here sent nothing: the operation is failed,
    so the same form may be sent again (after the drift, say)."""
    action, actor, character, call = save.action, save.actor, save.character, save.call
    try:
        remote = get_known(
            action=action, actor=actor, call=call, client=client, character=character
        )
        drift = drift_of(character=character, remote=remote)
        if drift and not overwrite_drift:
            raise drift_refused(
                action=action,
                actor=actor,
                character=character,
                call=call,
                drift=drift,
                remote=remote,
            )
        claim = claim_save(
            action=action, actor=actor, character=character, expected_version=character.version
        )
    except CharacterError as error:
        fail_operation(operation=operation, message=error.message)
        raise
    return remote, drift, claim


def remove_missing_character(*, actor: Membership, character_id: int) -> Character:
    """Tombstone a character Convai no longer has, without asking Convai to delete it.

    Only for a record flagged by Convai's own answer; when the bound key still works Convai
    is asked once more, and a character it does have is not removed (the flag is cleared)."""
    character = character_for(actor, character_id)
    authorize(actor=actor, action="character.delete", character=character)
    call = ConvaiCall(api_key=character.bound_key)
    if character.remote_missing_at is None:
        raise refuse(
            action="character.delete",
            actor=actor,
            error=CharacterError(
                "Convai still has this character as far as we know: delete it through "
                "“Delete”, which deletes it on Convai too."
            ),
            reason="still on Convai",
            character=character,
        )
    if key_is_usable(character):
        client = bound_client(
            action="character.delete", actor=actor, character=character, call=call
        )
        with convai_calls(action="character.delete", actor=actor, call=call, character=character):
            try:
                client.get_character(character.convai_id)
            except ConvaiRequestError as error:
                if not means_gone(error):
                    raise
            else:
                flag_found(character)
                raise refuse(
                    action="character.delete",
                    actor=actor,
                    error=StillOnConvai(),
                    reason="still on Convai",
                    character=character,
                    call=call,
                )
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.deleted_at = timezone.now()
        locked.deleted_by = actor.user
        locked.version += 1
        locked.save()
        add_revision(
            character=locked,
            reason=Revision.Reason.DELETED,
            user=actor.user,
            note="already gone from Convai",
        )
        record_character_event(
            action="character.delete",
            actor=actor,
            character=locked,
            details=call.details(remote="already gone"),
        )
    return locked
