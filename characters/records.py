"""The local half of a remote success: a character Convai created, copied or holds is stored
here (record, first revision, audit event, together), Convai's state is made ours (sync), a
delete Convai did leaves its tombstone. A remote success is never lost: a failed local write
names the Convai ID so "Check Convai" adopts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from convai.client import ConvaiClient
from convai.errors import ConvaiError
from convai.types import CharacterDetails
from keys.models import ApiKey
from teams.models import Membership, Team

from .errors import AlreadyInTeam, CharacterError
from .history import snapshot_changes
from .models import Character, PendingOperation, Revision
from .operations import (
    Actor,
    ConvaiCall,
    SystemActor,
    add_revision,
    apply_fields,
    clear_claim,
    convai_calls,
    finish_operation,
    local_write_failed,
    record_character_event,
    save_in_flight,
    snapshot_of,
)
from .remote import (
    FieldChange,
    audit_changes,
    differences,
    fields_from_remote,
)


@dataclass(frozen=True)
class Created:
    """A character Convai created, before it is stored here (store_new_character)."""

    convai_id: str
    fields: dict[str, Any]
    snapshot: dict[str, Any]
    pending_language_codes: list[str] | None
    warnings: list[str]


def create_on_convai(
    *,
    action: str,
    actor: Membership,
    call: ConvaiCall,
    client: ConvaiClient,
    fields: dict[str, Any],
    character: Character | None = None,
    label: str = "",
    what: str = "character",
) -> Created:
    """Create on Convai (a create, or a copy to another key), then set its languages (create
    takes none), then read it back: what Convai holds is the truth (it gives a character a
    default language, say). Languages Convai refused are kept as pending, with a warning."""
    with convai_calls(
        action=action, actor=actor, call=call, character=character, label=label, write=True
    ):
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
    details = read_back(client=client, convai_id=convai_id)
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


def read_back(*, client: ConvaiClient, convai_id: str) -> CharacterDetails | None:
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
    apply_fields(character=character, fields=fields)
    try:
        with transaction.atomic():
            character.save(force_insert=True)
            add_revision(character=character, reason=reason, user=creator, note=note)
            record_character_event(
                action=action,
                actor=actor,
                character=character,
                details=call.details(
                    fields={k: v for k, v in character.editable().items() if k != "backstory"},
                    **(extra or {}),
                ),
            )
            if also is not None:
                also(character)
    except IntegrityError:
        raise _already_or_unrecorded(team=actor.team, convai_id=convai_id) from None
    except DatabaseError:
        # Convai holds it, we could not write it down: say which ID to adopt, never lose it.
        raise local_write_failed(convai_id) from None
    return character


def _already_or_unrecorded(*, team: Team, convai_id: str) -> CharacterError:
    """Why a new record hit a constraint: the team has that Convai ID already, or the error
    that names the ID to adopt."""
    existing = Character.objects.filter(
        team=team, convai_id=convai_id, deleted_at__isnull=True
    ).first()
    if existing is not None:
        return AlreadyInTeam(existing)
    return local_write_failed(convai_id)


def store_for_operation(*, operation: PendingOperation, **store: Any) -> Character:
    """store_new_character, finishing the operation in the same transaction. The team having
    the character already (reconciliation adopted it meanwhile) finishes it too."""
    try:
        return store_new_character(
            **store, also=lambda character: finish_operation(operation=operation, result=character)
        )
    except AlreadyInTeam as error:
        finish_operation(operation=operation, result=error.character)
        raise


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

    `expected_version`: the version the caller saw before it read Convai (a job reads many
    characters while teammates work); if it changed since, or a save holds the version right
    now (its write may land at Convai after our read), nothing is written and the outcome
    says SAVED_MEANWHILE. With it, an unchanged character costs one conditional update (no
    lock). Runs in its own atomic block, so a caller's transaction can take it in with its
    own writes (a job item's result)."""
    snapshot = snapshot_of(remote)
    remote_fields = fields_from_remote(remote)
    with transaction.atomic():
        if expected_version is not None and _in_step_unlocked(
            actor=actor,
            character=character,
            call=call,
            snapshot=snapshot,
            remote_fields=remote_fields,
            expected_version=expected_version,
            extra=extra,
        ):
            return SyncResult(SyncResult.IN_STEP, character)
        locked = Character.objects.select_for_update().get(pk=character.pk)
        locked.bound_key = character.bound_key
        if locked.is_deleted:
            return SyncResult(SyncResult.DELETED, locked)
        if save_in_flight(locked) or (
            expected_version is not None and locked.version != expected_version
        ):
            return SyncResult(SyncResult.SAVED_MEANWHILE, locked)
        return _take_remote(
            actor=actor,
            locked=locked,
            call=call,
            snapshot=snapshot,
            remote_fields=remote_fields,
            note=note,
            extra=extra,
        )


def _in_step_unlocked(
    *,
    actor: Membership,
    character: Character,
    call: ConvaiCall,
    snapshot: dict[str, Any],
    remote_fields: dict[str, Any],
    expected_version: int,
    extra: dict[str, Any] | None,
) -> bool:
    """Unchanged (the common case in a job): one conditional update, no lock. False when
    something changed or the expected version moved (the locked path decides)."""
    if snapshot != character.snapshot or differences(character.editable(), remote_fields):
        return False
    now = timezone.now()
    unchanged = Character.objects.filter(
        pk=character.pk, version=expected_version, deleted_at__isnull=True
    )
    if not unchanged.update(
        synced_at=now, remote_missing_at=None, remote_changed_at=None, remote_state=None
    ):
        return False
    character.synced_at, character.remote_missing_at = now, None
    character.clear_drift()
    _record_sync(
        actor=actor, character=character, call=call, changes=[], changed=False, extra=extra
    )
    return True


def _take_remote(
    *,
    actor: Membership,
    locked: Character,
    call: ConvaiCall,
    snapshot: dict[str, Any],
    remote_fields: dict[str, Any],
    note: str,
    extra: dict[str, Any] | None,
) -> SyncResult:
    """Convai's state written over the locked record; a revision only when it changed."""
    field_changes = differences(locked.editable(), remote_fields)
    other_changes: list[FieldChange] = list(snapshot_changes(locked.snapshot or {}, snapshot))
    changed = bool(field_changes or other_changes) or snapshot != locked.snapshot
    apply_fields(character=locked, fields=remote_fields)
    locked.snapshot = snapshot
    locked.synced_at = timezone.now()
    locked.remote_missing_at = None
    locked.clear_drift()
    if changed:
        locked.version += 1
        locked.updated_at = locked.synced_at
    locked.save()
    if changed:
        add_revision(character=locked, reason=Revision.Reason.SYNCED, user=actor.user, note=note)
    changes = field_changes + other_changes
    _record_sync(
        actor=actor, character=locked, call=call, changes=changes, changed=changed, extra=extra
    )
    outcome = SyncResult.UPDATED if changed else SyncResult.IN_STEP
    return SyncResult(outcome, locked, field_changes, other_changes)


def _record_sync(
    *,
    actor: Membership,
    character: Character,
    call: ConvaiCall,
    changes: list[FieldChange],
    changed: bool,
    extra: dict[str, Any] | None,
) -> None:
    record_character_event(
        action="character.sync",
        actor=actor,
        character=character,
        details=call.details(
            changes=audit_changes(changes),
            **({} if changed else {"in_step": True}),
            **(extra or {}),
        ),
    )


def tombstone(
    *,
    actor: Actor,
    character: Character,
    operation: PendingOperation,
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
        clear_claim(locked)
        locked.save()
        add_revision(
            character=locked, reason=Revision.Reason.DELETED, user=locked.deleted_by, note=note
        )
        record_character_event(
            action="character.delete", actor=actor, character=locked, details=details
        )
        finish_operation(operation=operation, result=locked)
    return locked
