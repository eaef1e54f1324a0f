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

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRequestError
from convai.types import CharacterDetails
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership

from .convai_messages import explain
from .errors import (
    AlreadyInTeam,
    CharacterDeleted,
    CharacterError,
    KeyNotUsable,
    NameMismatch,
    NotOwnedByKey,
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
    key_label,
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
    store_new_character,
    tombstone,
)
from .remote import (
    FieldChange,
    audit_changes,
    differences,
    fields_from_remote,
)
from .selectors import character_for, key_is_usable, rebind_candidates


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
    action, actor, character, call = save.action, save.actor, save.character, save.call
    reason, note = revision
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        lost = locked.saving_token != token
        if not lost:
            apply_fields(character=locked, fields=sent)
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
        raise refuse(
            action=action,
            actor=actor,
            error=CharacterError(
                "Convai took your changes, but the save took so long that it could not be "
                "recorded here safely. Open the character again: its edit form shows what "
                "Convai holds now as changes made in Convai."
            ),
            reason="save claim expired",
            character=locked,
            call=call,
            changes=audit_changes(changes),
        )
    return locked


def take_remote_version(*, actor: Membership, character_id: int) -> Saved:
    """Sync from Convai: get the character and make Convai's state ours (apply_remote_state).
    `Saved.changes` lists what changed (empty: already in step). A character Convai no longer
    has is flagged (RemoteMissing), never deleted here."""
    character = character_for(actor, character_id)
    authorize(actor=actor, action="character.sync", character=character, event="character.sync")
    call = ConvaiCall()
    client = bound_client(action="character.sync", actor=actor, character=character, call=call)
    remote = get_known(
        action="character.sync", actor=actor, call=call, client=client, character=character
    )
    synced = apply_remote_state(actor=actor, character=character, remote=remote, call=call)
    if synced.outcome == SyncResult.DELETED:
        raise CharacterDeleted()
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
    """Send the language codes that failed after a create again."""
    character = character_for(actor, character_id)
    pending = list(character.pending_language_codes or [])
    if not pending:
        return Saved(character)
    authorize(actor=actor, action="character.update", character=character)
    call = ConvaiCall()
    client = bound_client(action="character.update", actor=actor, character=character, call=call)
    with convai_calls(
        action="character.update", actor=actor, call=call, character=character, write=True
    ):
        client.update_character(character.convai_id, language_codes=pending)
    readback = read_back(client=client, convai_id=character.convai_id)
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
            details=call.details(changes={"language_codes": [old, pending]}),
        )
    return Saved(locked)


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
    authorize(actor=actor, action="character.import")
    label = convai_id or name
    api_key = own_key(action="character.import", actor=actor, api_key_id=api_key_id, label=label)
    call = ConvaiCall()
    client = own_client(
        action="character.import", actor=actor, api_key=api_key, call=call, label=label
    )
    with convai_calls(action="character.import", actor=actor, call=call, label=label):
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
            action="character.import",
            actor=actor,
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
            action="character.import",
            actor=actor,
            error=AlreadyInTeam(found.existing),
            reason="already in team",
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
    authorize(actor=actor, action="character.import")
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
    authorize(actor=actor, action="character.import")
    api_key = own_key(action="character.import", actor=actor, api_key_id=api_key_id, label=name)
    call = ConvaiCall()
    client = own_client(
        action="character.import", actor=actor, api_key=api_key, call=call, label=name
    )
    with convai_calls(action="character.import", actor=actor, call=call, label=name):
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
    authorize(actor=actor, action="character.clone", character=source)
    call = ConvaiCall()
    client = bound_client(action="character.clone", actor=actor, character=source, call=call)
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
    with convai_operation(operation):
        convai_id = _clone_on_convai(
            actor=actor, call=call, client=client, source=source, include_kb=include_kb
        )
    fields, details, warnings = _name_copy(
        client=client, convai_id=convai_id, source=source, new_name=new_name
    )
    character = store_for_operation(
        operation=operation,
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


def _clone_on_convai(
    *,
    actor: Membership,
    call: ConvaiCall,
    client: ConvaiClient,
    source: Character,
    include_kb: bool,
) -> str:
    """Convai's clone of `source`; the copy's Convai ID."""
    with convai_calls(
        action="character.clone", actor=actor, call=call, character=source, write=True
    ):
        try:
            return client.clone_character(source.convai_id, include_kb=include_kb)
        except ConvaiRequestError as error:
            if means_gone(error):
                # Convai's refusal to copy an ID it does not have: a get tells for sure (and
                # raises RemoteMissing); if the get finds it, the clone's own error stands.
                get_known(
                    action="character.clone",
                    actor=actor,
                    call=call,
                    client=client,
                    character=source,
                )
            raise


def _name_copy(
    *, client: ConvaiClient, convai_id: str, source: Character, new_name: str
) -> tuple[dict[str, Any], CharacterDetails | None, list[str]]:
    """Rename the copy (a copy keeps its source's name) and read it back: the fields to
    store, what Convai holds (None when it does not answer) and the warnings."""
    warnings = []
    new_name = new_name.strip() or f"{source.name} (copy)"
    try:
        client.update_character(convai_id, name=new_name)
    except ConvaiError as error:
        warnings.append(f"The copy was made but could not be renamed ({error.message}).")
        new_name = source.name
    details = read_back(client=client, convai_id=convai_id)
    fields = {**source.editable(), "name": new_name}
    if details is not None:
        fields = fields_from_remote(details)
        if fields["backstory"] is None:
            fields["backstory"] = source.backstory
    return fields, details, warnings


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


def rebind_character(*, actor: Membership, character_id: int, api_key_id: UUID | str) -> Saved:
    """Bind the character to another member's verified key, after checking that key reaches
    it and its account owns it (get, then list)."""
    character = character_for(actor, character_id)
    authorize(actor=actor, action="character.rebind", character=character)
    api_key = next(
        (k for k in rebind_candidates(actor.team_id) if str(k.pk) == str(api_key_id)), None
    )
    if api_key is None:
        raise refuse(
            action="character.rebind",
            actor=actor,
            error=KeyNotUsable("Choose a verified API key of a current member of this team."),
            reason="key not usable",
            character=character,
        )
    call = ConvaiCall(api_key=api_key)
    try:
        client = client_for(api_key, actor=actor.user)
    except ApiKeyUnusable as error:
        raise refuse(
            action="character.rebind",
            actor=actor,
            error=KeyNotUsable(error.message),
            reason="key not usable",
            character=character,
            call=call,
        ) from None
    remote = _owned_through(actor=actor, character=character, client=client, call=call)
    return Saved(_store_rebind(actor=actor, character=character, remote=remote, call=call))


def _owned_through(
    *, actor: Membership, character: Character, client: ConvaiClient, call: ConvaiCall
) -> CharacterDetails:
    """The character as the new key (`call.api_key`) sees it, refused unless that key reaches
    it (get) and its Convai account owns it (list)."""
    assert call.api_key is not None
    api_key = call.api_key
    with convai_calls(action="character.rebind", actor=actor, call=call, character=character):
        try:
            remote = client.get_character(character.convai_id)
        except ConvaiRequestError as error:
            # Another account's key: Convai does not show it this character.
            raise refuse(
                action="character.rebind",
                actor=actor,
                error=KeyNotUsable(explain(error, key=key_label(api_key), rebind=True)),
                reason="key cannot reach it",
                character=character,
                call=call,
                convai_status=error.status,
                convai_message=error.remote_message or error.message,
            ) from None
        owned = any(i.character_id == character.convai_id for i in client.list_characters())
    if not owned:
        raise refuse(
            action="character.rebind",
            actor=actor,
            error=KeyNotUsable(
                f"“{api_key.label}” can read this character but its Convai account does not "
                "own it, so edits would fail. Choose a key of the account that created it."
            ),
            reason="key's account does not own it",
            character=character,
            call=call,
        )
    return remote


def _store_rebind(
    *, actor: Membership, character: Character, remote: CharacterDetails, call: ConvaiCall
) -> Character:
    """The new binding, its revision and its event, together."""
    assert call.api_key is not None
    api_key = call.api_key
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
        add_revision(
            character=locked,
            reason=Revision.Reason.REBOUND,
            user=actor.user,
            note=f"now {key_label(api_key)}",
        )
        record_character_event(
            action="character.rebind",
            actor=actor,
            character=locked,
            details=call.details(bound_key=[old, key_label(api_key)]),
        )
    return locked
