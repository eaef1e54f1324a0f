"""What import all and sync all share: recording an item's result with its character, an
item's failed read recorded as a page's would be, and the key's characters and quota."""

from __future__ import annotations

import logging
from typing import Any

from audit.models import Outcome
from convai.errors import ConvaiError
from convai.types import CharacterDetails
from jobs import running
from jobs.models import Job, JobItem
from jobs.pool import job_client
from keys.models import ApiKey
from keys.services import ApiKeyUnusable
from teams.models import Membership

from .. import errors, operations
from ..models import Character

logger = logging.getLogger("convai_admin.jobs")


class Discard(Exception):
    """The job item could not be recorded (another run has it): undo the character too."""


def store(run: running.JobRun, item: JobItem, state: str, message: str, **extra: Any) -> None:
    if not run.record_item(item, state, message, **extra):
        raise Discard()


def failed(
    action: str,
    actor: Membership,
    error: BaseException,
    call: operations.ConvaiCall,
    *,
    character: Character | None = None,
    item: JobItem,
    job: Job,
) -> str:
    """Record an item's failed read as a page's would be (a character Convai no longer has is
    flagged) and return the item's message (Convai's, as the client words it)."""
    if isinstance(error, ConvaiError):
        return operations.record_convai_failure(
            action=action,
            actor=actor,
            error=error,
            call=call,
            character=character,
            convai_id=item.target_id,
            label=item.label,
            known=character is not None,
            job=job.pk,
        ).message
    logger.error("Job item failed unexpectedly", exc_info=error)
    operations.record_character_event(
        action=action,
        actor=actor,
        character=character,
        convai_id=item.target_id,
        label=item.label,
        outcome=Outcome.FAILURE,
        details=call.details(job=job.pk, error=type(error).__name__),
    )
    return "An unexpected error stopped this item."


def key_characters(actor: Membership, api_key: ApiKey) -> list[CharacterDetails]:
    """The key's characters (one `list` call), failures recorded like any import's."""
    call = operations.ConvaiCall(api_key=api_key)
    try:
        client = job_client(api_key, actor)
    except ApiKeyUnusable as error:
        raise errors.KeyNotUsable(error.message) from None
    with operations.convai_calls(
        action="character.import", actor=actor, call=call, label=operations.key_label(api_key)
    ):
        return client.list_characters()
