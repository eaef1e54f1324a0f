"""Copy to another key: the same character created under another of the member's verified keys
(a staging account's character into the production account), with its lineage kept.

Convai's clone works only inside one account, so a copy is a create with the original's fields
(name, voice, backstory, actions, then languages), read back like any create. The copy records
which character and which revision it came from (`copied_from`, `copied_from_revision`); the
original lists its copies. Both sides are audited in the copy's transaction: `character.copy` on
the original, `character.create` with `details.copied_from` on the copy.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from convai.errors import ConvaiError
from keys.models import ApiKey
from teams.models import Membership

from . import services
from .models import Character, Revision
from .remote import fields_from_remote
from .selectors import usable_keys_for

ACTION = "character.copy"


def copy_targets(actor: Membership, character: Character) -> list[ApiKey]:
    """The member's verified keys a character may be copied to (not the key it is bound to)."""
    return [k for k in usable_keys_for(actor.user) if k.pk != character.bound_key_id]


def copy_character(
    *, actor: Membership, character_id: int, api_key_id: UUID | str
) -> services.Saved:
    """Create the character again under another of the actor's keys, with its lineage."""
    source = services._character(actor, character_id)
    services._authorized(actor, ACTION, source)
    api_key = services._own_key(ACTION, actor, api_key_id, label=source.name)
    if api_key.pk == source.bound_key_id:
        raise services._refused(
            ACTION,
            actor,
            services.KeyNotUsable(
                "The character is already under this key. Choose another key, or use Clone "
                "for a second copy under the same key."
            ),
            "same key",
            character=source,
        )
    revision = source.version
    fields = source.editable()
    call = services._Call()
    client = services._own_client(ACTION, actor, api_key, call, label=source.name)
    with services._convai(ACTION, actor, call, character=source, write=True):
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
                f"The copy was created, but Convai did not take its languages ({error.message}). "
                "Use “Retry languages” on its page."
            )
    details = services._read_back(client, convai_id)
    stored = {**fields, "language_codes": [] if pending else fields["language_codes"]}
    snapshot: dict[str, Any] = {"character_id": convai_id}
    if details is not None:
        snapshot = services._snapshot(details)
        stored.update({k: v for k, v in fields_from_remote(details).items() if v is not None})
    copy = _store_copy(actor, source, revision, api_key, convai_id, stored, snapshot, pending, call)
    return services.Saved(copy, warnings)


def _store_copy(
    actor: Membership,
    source: Character,
    revision: int,
    api_key: ApiKey,
    convai_id: str,
    fields: dict[str, Any],
    snapshot: dict[str, Any],
    pending: list[str] | None,
    call: services._Call,
) -> Character:
    """The local half: the copy, its first revision, and both events, together."""
    now = timezone.now()
    copy = Character(
        team=actor.team,
        convai_id=convai_id,
        bound_key=api_key,
        created_by=actor.user,
        created_at=now,
        updated_at=now,
        synced_at=now,
        snapshot=snapshot,
        pending_language_codes=pending,
        copied_from=source,
        copied_from_revision=revision,
    )
    services._apply(copy, fields)
    lineage = {
        "convai_id": source.convai_id,
        "name": source.name,
        "revision": revision,
        "key": services.key_label(source.bound_key),
    }
    try:
        with transaction.atomic():
            copy.save(force_insert=True)
            services._revision(
                copy, Revision.Reason.COPIED, actor.user, note=f"from {source.name} r{revision}"
            )
            services._record(
                "character.create",
                actor,
                character=copy,
                details=call.details(
                    fields={k: v for k, v in copy.editable().items() if k != "backstory"},
                    copied_from=lineage,
                ),
            )
            services._record(
                ACTION,
                actor,
                character=source,
                details=call.details(
                    revision=revision,
                    copy={"convai_id": convai_id, "name": copy.name},
                    to_key=services.key_label(api_key),
                ),
            )
    except (IntegrityError, DatabaseError):
        raise services._local_write_failed(convai_id) from None
    return copy
