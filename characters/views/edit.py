"""Changing a character through Convai: edit (with the conflict and drift guards), sync
from Convai, "Keep ours" after a drift, and retrying the languages Convai did not take."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from teams.decorators import team_view
from teams.http import TeamRequest

from .. import errors, history, services
from ..drift import keep_local_version
from ..forms import EditCharacterForm, initial_from
from ..models import EDITABLE_FIELDS, Character, Revision
from ..presenters import state_of
from ..remote import FIELD_LABELS, differences
from ..templatetags.characters_extras import ago
from .common import (
    catalogue_for,
    changed_names,
    detail_url,
    int_or_none,
    live_character,
    overwrite_note,
    say_warnings,
    sent_names,
)


def _saved(request: TeamRequest, saved: services.Saved) -> HttpResponse:
    say_warnings(request, saved)
    if saved.changes:
        messages.success(
            request,
            f"Saved {sent_names(saved)} of “{saved.character.name}”." + overwrite_note(saved),
        )
    else:
        messages.info(request, "Nothing changed, so nothing was sent to Convai.")
    return redirect(detail_url(request, saved.character))


@require_http_methods(["GET", "POST"])
@team_view("character.update")
@live_character
def character_edit(request: TeamRequest, character: Character) -> HttpResponse:
    if request.method != "POST":
        # Nothing to edit through Convai; a POST still goes to the service, which records it.
        refusal = state_of(character).edit_refusal
        if refusal:
            messages.error(request, refusal)
            return redirect(detail_url(request, character))
    catalogue = catalogue_for(request, character=character)
    current = character.editable()
    drift: list[dict[str, Any]] = []
    conflict: dict[str, Any] | None = None
    if request.method == "POST":
        form = EditCharacterForm(request.POST, catalogue=catalogue, current=current)
        if form.is_valid():
            yours = form.fields_data()
            expected = form.cleaned_data["version"]
            try:
                saved = services.update_character(
                    actor=request.membership,
                    character_id=character.pk,
                    expected_version=expected,
                    fields=yours,
                    overwrite_drift=request.POST.get("overwrite_drift") == "1",
                )
            except errors.Drift as error:
                # The panel above the form says it all, with the two ways forward.
                drift = history.change_rows(
                    error.changes, left="Last saved here", right="In Convai now"
                )
            except errors.Conflict as error:
                conflict = _conflict(character, error, expected, yours)
                data = request.POST.copy()
                data["version"] = str(error.version)
                # The panel above the form names who saved what; the input stays.
                form = EditCharacterForm(data, catalogue=catalogue, current=error.current)
                form.is_valid()
            except errors.CharacterError as error:
                form.add_error(None, error.message)
            else:
                return _saved(request, saved)
    else:
        form = EditCharacterForm(
            initial={**initial_from(current), "version": character.version},
            catalogue=catalogue,
            current=current,
        )
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "catalogue": catalogue,
        "drift": drift,
        "conflict": conflict,
        "mode": "edit",
    }
    return render(request, "characters/character_form.html", context)


def _conflict(
    character: Character, error: errors.Conflict, expected: int, yours: dict[str, Any]
) -> dict[str, Any]:
    """What the teammate changed since the version this form was opened at, field by field,
    next to this member's input."""
    base = (
        Revision.objects.filter(character=character, number=expected)
        .values_list("fields", flat=True)
        .first()
    )
    theirs = error.current
    changed = differences(base, theirs) if base else differences(yours, theirs)
    fields = {c.field: history.display(c.new, c.field) for c in changed}
    return {
        "by": error.by,
        "at": error.at,
        "ago": ago(error.at),
        # Another save holds the version and has not finished: nothing of theirs to show yet.
        "in_progress": isinstance(error, errors.SaveInProgress),
        "fields": fields,
        "rows": [
            {
                "label": FIELD_LABELS[name],
                "theirs": fields[name],
                "yours": history.display(yours.get(name), name),
            }
            for name in EDITABLE_FIELDS
            if name in fields
        ],
    }


@require_POST
@team_view("character.sync")
@live_character
def character_sync(request: TeamRequest, character: Character) -> HttpResponse:
    """Sync from Convai: get it, keep Convai's version here, and say what changed (a revision
    only when something did). Also "Take Convai's version" after a drift on the edit form."""
    try:
        saved = services.take_remote_version(actor=request.membership, character_id=character.pk)
    except errors.RemoteMissing as error:
        messages.error(request, error.message)
        return redirect(detail_url(request, character))
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect(detail_url(request, character))
    name = saved.character.name
    if saved.changes:
        messages.success(
            request,
            f"Synced “{name}” from Convai. Changed there: {changed_names(saved)}. "
            f"Stored as version {saved.character.version}.",
        )
    else:
        messages.info(request, f"“{name}” is already in step with Convai: nothing changed.")
    if request.POST.get("next") == "edit":
        return redirect("characters:character-edit", request.team.slug, character.pk)
    return redirect(detail_url(request, character))


@require_POST
@team_view("character.update")
@live_character
def character_keep_ours(request: TeamRequest, character: Character) -> HttpResponse:
    """ "Keep ours" after the drift check saw changes in Convai: send our version over theirs
    (an update through the conflict guard; a teammate's save meanwhile stops it)."""
    try:
        saved = keep_local_version(
            actor=request.membership,
            character_id=character.pk,
            expected_version=int_or_none(request.POST.get("version")) or 0,
        )
    except errors.Conflict:
        messages.error(
            request,
            "A teammate saved this character meanwhile, so nothing was sent to Convai. Review "
            "the changes again before you choose.",
        )
    except errors.CharacterError as error:
        messages.error(request, error.message)
    else:
        if saved.character.version != character.version:
            messages.success(
                request,
                f"Kept ours: “{saved.character.name}” in Convai is again the version saved "
                f"here, stored as version {saved.character.version}.",
            )
        else:
            messages.info(request, "Convai already holds the version saved here: nothing sent.")
    return redirect(detail_url(request, character))


@require_POST
@team_view("character.update")
@live_character
def character_languages(request: TeamRequest, character: Character) -> HttpResponse:
    """Retry the language codes Convai did not take after a create."""
    try:
        saved = services.retry_language_codes(actor=request.membership, character_id=character.pk)
    except errors.CharacterError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Convai now has the languages of “{saved.character.name}”.")
    return redirect(detail_url(request, character))
