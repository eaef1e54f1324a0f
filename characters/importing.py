"""Bringing characters Convai already holds into the team: look one up (get, by ID or name),
import it with its first revision, adopt the one a timed-out create or clone made, or record
one known from a payload (the demo bootstrap). A character the key's account does not own (a
public character of someone else) is not imported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from audit.models import Outcome
from convai.types import CharacterDetails
from keys.models import ApiKey
from teams.models import Membership

from .errors import AlreadyInTeam, CharacterError, NotOwnedByKey
from .models import Character, Revision
from .operations import (
    ConvaiCall,
    authorize,
    convai_calls,
    own_client,
    own_key,
    record_character_event,
    refuse,
    snapshot_of,
)
from .records import store_new_character
from .remote import (
    fields_from_remote,
)
from .services import Saved


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
