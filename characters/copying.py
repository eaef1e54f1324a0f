"""Copy to another key: the same character created under another of the member's verified keys
(a staging account's character into the production account), with its lineage kept.

Convai's clone works only inside one account, so a copy is a create with the original's fields
(name, voice, backstory, actions, then languages), read back like any create
(records.create_on_convai). The copy records which character and which revision it came from
(`copied_from`, `copied_from_revision`); the original lists its copies. Both sides are audited
in the copy's transaction: `character.create` with `details.copied_from` on the copy, then
`character.copy` on the original.
"""

from __future__ import annotations

from uuid import UUID

from keys.models import ApiKey
from teams.models import Membership

from . import errors, operations, records, selectors, services
from .models import Character, Revision

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
