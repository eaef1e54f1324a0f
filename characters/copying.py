"""Copies: a clone on Convai under the same key, and a copy to another key.

Clone: Convai copies the character under its bound key; the copy is renamed and stored, written
down first like a create (begin_operation), so a dead request is reconciled, never repeated.

Copy to another key: the same character created under another of the member's verified keys
(a staging account's character into the production account), with its lineage kept.

Convai's clone works only inside one account, so a copy is a create with the original's fields
(name, voice, backstory, actions, then languages), read back like any create
(records.create_on_convai). The copy records which character and which revision it came from
(`copied_from`, `copied_from_revision`); the original lists its copies. Both sides are audited
in the copy's transaction: `character.create` with `details.copied_from` on the copy, then
`character.copy` on the original.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from convai.client import ConvaiClient
from convai.errors import ConvaiError, ConvaiRequestError
from convai.types import CharacterDetails
from keys.models import ApiKey
from teams.models import Membership

from . import errors, operations, records, selectors, services
from .models import Character, PendingOperation, Revision
from .remote import fields_from_remote

ACTION = "character.copy"


def copy_character(
    *, actor: Membership, character_id: int, api_key_id: UUID | str
) -> services.Saved:
    """Create the character again under another of the actor's keys, with its lineage."""
    source = selectors.character_for(actor, character_id)
    operations.authorize(actor=actor, action=ACTION, character=source)
    api_key = _target_key(actor=actor, source=source, api_key_id=api_key_id)
    revision = source.version
    call = operations.ConvaiCall()
    client = operations.own_client(
        action=ACTION, actor=actor, api_key=api_key, call=call, label=source.name
    )
    created = records.create_on_convai(
        action=ACTION,
        actor=actor,
        call=call,
        client=client,
        fields=source.editable(),
        character=source,
        what="copy",
    )

    def record_on_source(copy: Character) -> None:
        operations.record_character_event(
            action=ACTION,
            actor=actor,
            character=source,
            details=call.details(
                revision=revision,
                copy={"convai_id": copy.convai_id, "name": copy.name},
                to_key=operations.key_label(api_key),
            ),
        )

    copy = records.store_new_character(
        actor=actor,
        convai_id=created.convai_id,
        api_key=api_key,
        fields=created.fields,
        snapshot=created.snapshot,
        reason=Revision.Reason.COPIED,
        note=f"from {source.name} r{revision}",
        action="character.create",
        call=call,
        pending_language_codes=created.pending_language_codes,
        copied_from=source,
        copied_from_revision=revision,
        extra={
            "copied_from": {
                "convai_id": source.convai_id,
                "name": source.name,
                "revision": revision,
                "key": operations.key_label(source.bound_key),
            }
        },
        also=record_on_source,
    )
    return services.Saved(copy, created.warnings)


def _target_key(*, actor: Membership, source: Character, api_key_id: UUID | str) -> ApiKey:
    """One of the actor's own keys, other than the one the character is bound to."""
    api_key = operations.own_key(
        action=ACTION, actor=actor, api_key_id=api_key_id, label=source.name
    )
    if api_key.pk == source.bound_key_id:
        raise operations.refuse(
            action=ACTION,
            actor=actor,
            error=errors.KeyNotUsable(
                "The character is already under this key. Choose another key, or use Clone "
                "for a second copy under the same key."
            ),
            reason="same key",
            character=source,
        )
    return api_key


def clone_character(
    *,
    actor: Membership,
    character_id: int,
    new_name: str,
    include_kb: bool = False,
    token: str = "",
) -> services.Saved:
    """Copy on Convai under the character's bound key, name the copy, store it. Written down
    first like a create (begin_operation), so a dead request is reconciled, never repeated."""
    source = selectors.character_for(actor, character_id)
    operations.authorize(actor=actor, action="character.clone", character=source)
    call = operations.ConvaiCall()
    client = operations.bound_client(
        action="character.clone", actor=actor, character=source, call=call
    )
    assert source.bound_key is not None
    operation = operations.begin_operation(
        actor=actor,
        kind=PendingOperation.Kind.CLONE,
        token=token,
        name=new_name.strip() or f"{source.name} (copy)",
        api_key=source.bound_key,
        fields={"source_name": source.name, "include_kb": include_kb},
        character=source,
    )
    with operations.convai_operation(operation):
        convai_id = _clone_on_convai(
            actor=actor, call=call, client=client, source=source, include_kb=include_kb
        )
    fields, details, warnings = _name_copy(
        client=client, convai_id=convai_id, source=source, new_name=new_name
    )
    character = records.store_for_operation(
        operation=operation,
        actor=actor,
        convai_id=convai_id,
        api_key=source.bound_key,
        fields=fields,
        snapshot=(
            operations.snapshot_of(details) if details is not None else {"character_id": convai_id}
        ),
        reason=Revision.Reason.CLONED,
        action="character.clone",
        call=call,
        extra={"source": source.convai_id, "source_name": source.name, "kb": include_kb},
    )
    return services.Saved(character, warnings)


def _clone_on_convai(
    *,
    actor: Membership,
    call: operations.ConvaiCall,
    client: ConvaiClient,
    source: Character,
    include_kb: bool,
) -> str:
    """Convai's clone of `source`; the copy's Convai ID."""
    with operations.convai_calls(
        action="character.clone", actor=actor, call=call, character=source, write=True
    ):
        try:
            return client.clone_character(source.convai_id, include_kb=include_kb)
        except ConvaiRequestError as error:
            if operations.means_gone(error):
                # Convai's refusal to copy an ID it does not have: a get tells for sure (and
                # raises RemoteMissing); if the get finds it, the clone's own error stands.
                operations.get_known(
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
    details = records.read_back(client=client, convai_id=convai_id)
    fields = {**source.editable(), "name": new_name}
    if details is not None:
        fields = fields_from_remote(details)
        if fields["backstory"] is None:
            fields["backstory"] = source.backstory
    return fields, details, warnings
