"""Rebinding: a character whose key was revoked, or whose key's owner left the team, is
read-only until an Admin binds it to another member's verified key, checked with Convai first
(that key reaches it, and its account owns it)."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.utils import timezone

from convai.client import ConvaiClient
from convai.errors import ConvaiRequestError
from convai.types import CharacterDetails
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership

from .convai_messages import explain
from .errors import CharacterError, KeyNotUsable, SaveInProgress
from .models import Character, Revision
from .operations import (
    ConvaiCall,
    add_revision,
    authorize,
    convai_calls,
    key_label,
    record_character_event,
    refuse,
    save_in_flight,
    snapshot_of,
)
from .selectors import character_for, rebind_candidates
from .services import Saved


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
    """The new binding, its revision and its event, together; refused while a save holds
    the character's version (its write would land under the old key's snapshot)."""
    assert call.api_key is not None
    api_key = call.api_key
    with transaction.atomic():
        locked = Character.objects.select_for_update().get(pk=character.pk)
        busy = save_in_flight(locked)
        if not busy:
            old = key_label(character.bound_key)
            _bind(locked=locked, actor=actor, old=old, api_key=api_key, remote=remote, call=call)
    if busy:  # recorded after the rollback, as every refusal
        raise refuse(
            action="character.rebind",
            actor=actor,
            error=CharacterError(
                f"{SaveInProgress(locked).by_name} is saving this character right now. Choose "
                "the key again in a moment, once their save has finished."
            ),
            reason="save in progress",
            character=locked,
            call=call,
        )
    return locked


def _bind(
    *,
    locked: Character,
    actor: Membership,
    old: str,
    api_key: ApiKey,
    remote: CharacterDetails,
    call: ConvaiCall,
) -> None:
    """The locked record bound to `api_key` (was `old`), with its revision and event."""
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
