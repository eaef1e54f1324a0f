"""Drift that shows itself: a periodic look at Convai for characters changed behind our back.

`check_drift` makes one pass over every usable key (active, verified, its owner still in the
team of the characters bound to it). Per key it costs ONE `list` call, whatever the number of
characters: the list carries name, voice, actions and languages, which are compared with each
character's last snapshot. A list item has no backstory, so a backstory-only edit cannot show
in it; to find those cheaply, a pass also reads a few unchanged characters in full (`get`),
least recently read first (CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY), and reads in full the ones whose
list item differs (for the review's backstory diff). All the `get`s of a key's pass together stay
within CONVAI_ADMIN_DRIFT_GETS_PER_KEY and the core-API quota the key has left (a key with none
left is not called at all). A character whose list item differs is marked even when no `get` is
left for it: the list proves the drift, the backstory then stays unknown until a later pass.

A drifted character gets `remote_changed_at` and the (redacted) state seen in Convai; its record
and revisions are untouched until a member reviews the difference and takes Convai's version
(sync) or keeps ours (an overwrite through the update's drift guard); both clear the mark.
Newly drifted characters are audited once each as the system (no actor, origin
"task check_drift"); a pass that finds nothing records nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.context import audit_context
from audit.services import record
from convai.errors import ConvaiError, ConvaiRateLimitError
from convai.types import CharacterDetails
from keys.models import ApiKey
from keys.selectors import core_api_remaining
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership

from . import operations, selectors, services
from .models import Character, Revision
from .remote import FieldChange, audit_changes, differences, fields_from_remote, redact
from .selectors import key_usable

logger = logging.getLogger("convai_admin.drift")
ORIGIN = "task check_drift"
ACTION = "character.drift_detected"


# --- What differs ------------------------------------------------------------------------------


def known_fields(character: Character) -> dict[str, Any]:
    """Our last knowledge of Convai's copy: the snapshot's fields (the edited fields when the
    snapshot never held a whole payload, e.g. a clone that could not be read back)."""
    snapshot = character.snapshot or {}
    if snapshot.get("character_id") and "character_name" in snapshot:
        return fields_from_remote(CharacterDetails.from_payload(snapshot))
    return character.editable()


def remote_changes(character: Character) -> list[FieldChange]:
    """What Convai's copy, as the last check saw it, changed since our last save (its last
    revision): the "Review changes" diff. Empty when no drift is marked."""
    state = character.remote_state or {}
    if character.remote_changed_at is None or not state.get("character_id"):
        return []
    try:
        seen = fields_from_remote(CharacterDetails.from_payload(state))
    except ValueError:
        return []
    if "backstory" not in state:
        seen["backstory"] = None  # from a list item: unknown, not "emptied"
    return differences(character.editable(), seen)


# --- The pass ---------------------------------------------------------------------------------


@dataclass
class KeyPass:
    """What one key's part of a pass did (the summary, and what tests assert)."""

    lists: int = 0
    gets: int = 0
    newly_changed: int = 0
    gone: int = 0
    skipped: str = ""


@dataclass
class DriftPass:
    keys: dict[str, KeyPass] = field(default_factory=dict)

    def summary(self) -> str:
        passes = list(self.keys.values())
        skipped = sum(1 for p in passes if p.skipped)
        return (
            f"drift check: {len(passes)} key(s), {sum(p.lists for p in passes)} list call(s), "
            f"{sum(p.gets for p in passes)} get(s), "
            f"{sum(p.newly_changed for p in passes)} newly changed in Convai, "
            f"{sum(p.gone for p in passes)} gone, {skipped} key(s) skipped"
        )


def _checked_characters() -> dict[ApiKey, list[Character]]:
    """Live characters still on Convai whose bound key is usable, grouped by key (one query)."""
    characters = (
        Character.objects.filter(
            key_usable(),
            deleted_at__isnull=True,
            remote_missing_at__isnull=True,
            bound_key__verified_at__isnull=False,
        )
        .select_related("bound_key", "bound_key__owner", "created_by", "team")
        .order_by("bound_key_id", "pk")
    )
    by_key: dict[ApiKey, list[Character]] = defaultdict(list)
    keys: dict[Any, ApiKey] = {}
    for character in characters:
        if character.bound_key is None:
            continue
        api_key = keys.setdefault(character.bound_key_id, character.bound_key)
        by_key[api_key].append(character)
    return by_key


def check_drift() -> str:
    """One pass over every usable key (see the module's docstring); returns a short summary.
    Does nothing while CONVAI_ADMIN_DRIFT_CHECK_MINUTES is 0 (tests, or switched off)."""
    if settings.CONVAI_ADMIN_DRIFT_CHECK_MINUTES <= 0:
        return "drift check: off (CONVAI_ADMIN_DRIFT_CHECK_MINUTES=0)"
    return run_drift_pass().summary()


def run_drift_pass() -> DriftPass:
    result = DriftPass()
    with audit_context(origin=ORIGIN):
        for api_key, characters in _checked_characters().items():
            result.keys[str(api_key.pk)] = _check_key(api_key, characters)
    return result


def _gets_allowed(api_key: ApiKey) -> int | None:
    """How many `get`s this key's pass may make after its list; None: not even the list."""
    remaining = core_api_remaining(api_key)
    if remaining is not None and remaining < 1:
        return None
    budget = max(0, settings.CONVAI_ADMIN_DRIFT_GETS_PER_KEY)
    if remaining is not None:
        budget = min(budget, remaining - 1)
    return budget


def _check_key(api_key: ApiKey, characters: list[Character]) -> KeyPass:
    done = KeyPass()
    budget = _gets_allowed(api_key)
    if budget is None:
        done.skipped = "no core-API quota left"
        return done
    try:
        client = client_for(api_key, actor=None)
    except ApiKeyUnusable:
        done.skipped = "key cannot be opened"
        return done
    try:
        done.lists += 1
        listed = {item.character_id: item for item in client.list_characters()}
    except ConvaiError as error:
        logger.warning("Drift check: listing with key %s failed: %s", api_key.pk, error.message)
        done.skipped = "list failed"
        return done
    suspects: list[tuple[Character, CharacterDetails | None]] = []
    unchanged: list[Character] = []
    for character in characters:
        item = listed.get(character.convai_id)
        # A drifted character is compared with what Convai showed last: re-read only on news.
        base = _seen_fields(character) or known_fields(character)
        if item is None or differences(base, fields_from_remote(item)):
            suspects.append((character, item))
        elif character.remote_changed_at is None:
            unchanged.append(character)
    sample_size = min(settings.CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY, max(0, budget - len(suspects)))
    unchanged.sort(key=lambda c: (c.remote_checked_at is not None, c.remote_checked_at or 0, c.pk))
    work = suspects + [(character, listed[character.convai_id]) for character in unchanged]
    work = work[: len(suspects) + max(0, sample_size)]
    for character, item in work:
        details: CharacterDetails | None = None
        if done.gets < budget:
            done.gets += 1
            try:
                details = client.get_character(character.convai_id)
            except ConvaiError as error:
                if item is None and operations.means_gone(error):
                    done.gone += _flag_gone(character, api_key)
                    continue
                logger.warning(
                    "Drift check: reading %s failed: %s", character.convai_id, error.message
                )
                if isinstance(error, ConvaiRateLimitError):
                    budget = done.gets  # no more reads with this key in this pass
        if details is None and item is None:
            continue  # not in the list and not read: nothing known, nothing said
        done.newly_changed += _compare(character, details or item, full=details is not None)
    return done


def _seen_fields(character: Character) -> dict[str, Any] | None:
    state = character.remote_state or {}
    if character.remote_changed_at is None or not state.get("character_id"):
        return None
    return fields_from_remote(CharacterDetails.from_payload(state))


def _compare(character: Character, remote: CharacterDetails | None, *, full: bool) -> int:
    """Mark, refresh or clear one character's drift; 1 when it is newly changed."""
    assert remote is not None
    now = timezone.now()
    drift = differences(known_fields(character), fields_from_remote(remote))
    state: dict[str, Any] = redact(remote.raw)
    checked = {"remote_checked_at": now} if full else {}
    current = Character.objects.filter(
        pk=character.pk, version=character.version, deleted_at__isnull=True
    )
    if not drift:
        if full and character.remote_changed_at is not None:
            # Changed back in Convai: nothing left to review.
            current.update(remote_changed_at=None, remote_state=None, **checked)
        elif full:
            current.update(**checked)
        return 0
    if character.remote_changed_at is not None:
        current.update(remote_state=state, **checked)
        return 0
    with transaction.atomic():
        marked = current.filter(remote_changed_at__isnull=True).update(
            remote_changed_at=now, remote_state=state, **checked
        )
        if not marked:
            return 0  # saved or marked meanwhile: that save's own state stands
        record(
            ACTION,
            team=character.team,
            target_type=operations.TARGET_TYPE,
            target_id=character.convai_id,
            target_label=character.name,
            details={
                "key_used": operations.key_label(character.bound_key),
                "drifted": [change.field for change in drift],
                "changes": audit_changes(drift),
                "read": "get" if full else "list",
            },
        )
    return 1


def _flag_gone(character: Character, api_key: ApiKey) -> int:
    """Not in the key's list and a get says Convai has no such ID: flag it (once, audited)."""
    with transaction.atomic():
        flagged = Character.objects.filter(pk=character.pk, remote_missing_at__isnull=True).update(
            remote_missing_at=timezone.now()
        )
        if flagged:
            record(
                ACTION,
                team=character.team,
                target_type=operations.TARGET_TYPE,
                target_id=character.convai_id,
                target_label=character.name,
                details={"key_used": operations.key_label(api_key), "gone": True},
            )
    return flagged


# --- Reading and resolving drift in the team --------------------------------------------------


def keep_local_version(
    *, actor: Membership, character_id: int, expected_version: int
) -> services.Saved:
    """ "Keep ours": send our version of every drifted field over Convai's, through the
    update's conflict and drift guard (Conflict if a teammate saved meanwhile)."""
    character = selectors.character_for(actor, character_id)
    return services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=expected_version,
        fields=character.editable(),
        overwrite_drift=True,
        reason=Revision.Reason.UPDATED,
        note="kept ours over changes made in Convai",
    )


__all__ = [
    "ACTION",
    "check_drift",
    "keep_local_version",
    "known_fields",
    "remote_changes",
    "run_drift_pass",
]
