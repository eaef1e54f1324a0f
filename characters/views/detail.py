"""The character's page: its fields, what it may do, recent history and audit events, the
"Changed in Convai" review and a save under way."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from teams.decorators import team_view
from teams.http import TeamRequest

from .. import history, selectors
from ..drift import remote_changes
from ..models import Character
from ..presenters import actions_for, language_labels, state_of, voice_info
from ..templatetags.characters_extras import ago
from .common import character_of, names

DETAIL_HISTORY_SIZE = 5  # the latest revisions on the detail page; "Full history" pages 20
BACKSTORY_PREVIEW_CHARS = 600  # a longer backstory starts collapsed on the detail page


def _snapshot_extras(snapshot: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(key, text, is_block) for the snapshot fields we do not edit."""
    extras = []
    for key in sorted(k for k in snapshot if k not in history.EDITED_SNAPSHOT_KEYS):
        value = snapshot[key]
        if isinstance(value, dict | list):
            text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
            extras.append((key, text, True))
        else:
            extras.append((key, "—" if value in (None, "") else str(value), False))
    return extras


@require_GET
@team_view("character.view")
def character_detail(request: TeamRequest, character_id: int) -> HttpResponse:
    """The character, its history and audit events; a backstory longer than
    BACKSTORY_PREVIEW_CHARS starts collapsed to a preview (a <details>, no JS)."""
    character = character_of(request, character_id)
    state = state_of(character)
    voice_names, language_names = names(character.bound_key if state.key_usable else None)
    context = {
        "team": request.team,
        "character": character,
        "voice": voice_info(character.voice_type, voice_names),
        "languages": language_labels(character.language_codes, language_names),
        "pending_languages": language_labels(
            character.pending_language_codes or [], language_names
        ),
        "history": history.history_page(character, per_page=DETAIL_HISTORY_SIZE),
        "audit_events": history.audit_events(character),
        "snapshot_extras": _snapshot_extras(character.snapshot or {}),
        "backstory_preview_chars": BACKSTORY_PREVIEW_CHARS,
        "key_usable": state.key_usable,
        "live": state.live,
        # Gone from Convai: nothing can be done through Convai but checking again or removing it.
        "missing": state.missing,
        "saving": _saving(character) if state.live else None,
        "actions": actions_for(request.membership, character, state),
        "drift_review": (_drift_review(character) if state.live and not state.missing else None),
    }
    return render(request, "characters/character_detail.html", context)


def _drift_review(character: Character) -> dict[str, Any] | None:
    """The "Changed in Convai" panel: what the drift check saw there, against our last save."""
    if character.remote_changed_at is None:
        return None
    return {
        "since": character.remote_changed_at,
        "ago": ago(character.remote_changed_at),
        "rows": history.change_rows(
            remote_changes(character),
            left=f"Last saved here (version {character.version})",
            right="In Convai now",
        ),
        # Seen in the list only: the backstory there is not known yet.
        "backstory_unknown": "backstory" not in (character.remote_state or {}),
    }


def _saving(character: Character) -> dict[str, Any] | None:
    """A save on its way to Convai (it holds the version), or one a dead server left behind
    (its claim expired): said on the page, so nobody wonders why their save is refused."""
    if character.saving_since is None:
        return None
    return {
        "by": character.saving_by.display_name if character.saving_by else "Someone",
        "at": character.saving_since,
        "ago": ago(character.saving_since),
        "interrupted": character.saving_since < selectors.save_claim_expired_before(),
    }
