"""A character's past: every revision with its diff, any two compared, and restoring one
(an ordinary update through Convai, guarded like an edit)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from convai_admin.htmx import render_page
from teams.decorators import team_view
from teams.http import TeamRequest

from .. import errors, history, services
from ..models import Character, Revision
from ..presenters import actions_for, state_of
from .common import (
    answer_in_dialog,
    character_of,
    detail_url,
    int_or_none,
    live_character,
    overwrite_note,
    say_warnings,
    sent_names,
)


def _history_context(request: TeamRequest, character: Character) -> dict[str, Any]:
    state = state_of(character)
    return {
        "team": request.team,
        "character": character,
        "live": state.live,
        "actions": actions_for(request.membership, character, state),
    }


@require_GET
@team_view("character.view")
def character_history(request: TeamRequest, character_id: int) -> HttpResponse:
    """Every revision, newest first, 20 a page, each with its diff against the one before."""
    character = character_of(request, character_id)
    context = {
        **_history_context(request, character),
        "history": history.history_page(character, request.GET.get("page")),
    }
    return render_page(request, "characters/character_history.html", context, partial="entries")


@require_GET
@team_view("character.view")
def character_compare(request: TeamRequest, character_id: int) -> HttpResponse:
    """Any two revisions side by side (a plain GET form; htmx swaps only the result)."""
    character = character_of(request, character_id)
    numbers = history.revision_numbers(character)
    first = int_or_none(request.GET.get("a"))
    second = int_or_none(request.GET.get("b"))
    if first is None and second is None and numbers:
        # Opened without a choice: the latest change (the version before the current one).
        second = numbers[0]
        first = numbers[1] if len(numbers) > 1 else numbers[0]
    comparison = None
    error = ""
    if first is not None and second is not None:
        comparison = history.compare(character, first, second)
        if comparison is None:
            error = "Choose two versions this character has."
    elif request.GET:
        error = "Choose two versions to compare."
    context = {
        **_history_context(request, character),
        "numbers": numbers,
        "first": first,
        "second": second,
        "comparison": comparison,
        "error": error,
    }
    return render_page(request, "characters/character_compare.html", context, partial="result")


def _restored(request: TeamRequest, saved: services.Saved, number: int) -> HttpResponse:
    say_warnings(request, saved)
    name = saved.character.name
    if saved.changes:
        messages.success(
            request,
            f"Restored version {number} of “{name}” ({sent_names(saved)}). "
            f"It is now version {saved.character.version}." + overwrite_note(saved),
        )
    else:
        messages.info(request, f"Version {number} is what “{name}” is already.")
    return redirect(detail_url(request, saved.character))


@require_http_methods(["GET", "POST"])
@team_view("character.restore")
@live_character
def character_restore(request: TeamRequest, character: Character, number: int) -> HttpResponse:
    """Confirm, then put version `number` back through Convai: an ordinary update, guarded
    against conflicts and drift like an edit; what will change is shown first."""
    revision = (
        Revision.objects.filter(character=character, number=number)
        .select_related("created_by")
        .first()
    )
    if revision is None:
        raise errors.CharacterNotFound("This character has no such version.")
    expected = int_or_none(request.POST.get("version")) or character.version
    overwrite = request.POST.get("overwrite_drift") == "1"
    drift: list[dict[str, Any]] = []
    error = ""
    conflict_by = ""
    refusal = state_of(character).edit_refusal
    if request.method == "POST" and not refusal:
        try:
            saved = services.restore_revision(
                actor=request.membership,
                character_id=character.pk,
                number=number,
                expected_version=expected,
                overwrite_drift=overwrite,
            )
        except errors.Drift as failure:
            drift = history.change_rows(
                failure.changes, left="Last saved here", right="In Convai now"
            )
            overwrite = True
        except errors.Conflict as failure:
            # A teammate saved meanwhile: show the restore against their version, ask again.
            conflict_by = failure.by.display_name if failure.by is not None else "Someone"
            character = character_of(request, character.pk)
            expected = failure.version
            overwrite = False
        except errors.RemoteMissing as failure:
            refusal = failure.message
            character.remote_missing_at = timezone.now()
        except errors.CharacterError as failure:
            error = failure.message
        else:
            return _restored(request, saved, number)
    else:
        expected = character.version
    changes = history.restore_changes(character, revision)
    context = {
        "team": request.team,
        "character": character,
        "revision": revision,
        "rows": history.change_rows(changes, left="Now", right=f"Version {number}"),
        "version": expected,
        "overwrite": overwrite,
        "drift": drift,
        "error": error,
        "refusal": refusal,
        "conflict_by": conflict_by,
        "cancel_url": detail_url(request, character),
    }
    return answer_in_dialog(
        request,
        render_page(request, "characters/character_restore.html", context, partial="confirm"),
    )
