"""The confirmations (a partial in the shared dialog for htmx, a plain page without
JavaScript): clone, delete, remove a character Convai no longer has, rebind to another key."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from convai_admin.htmx import confirm_or_act, render_page
from teams import policy
from teams.decorators import team_view
from teams.http import TeamRequest

from .. import binding, copying, errors, history, selectors, services
from ..forms import CloneForm, DeleteForm, RebindForm, key_choice_label
from ..models import Character
from .common import answer_in_dialog, detail_url, list_url, live_character, made_on_convai

# The event (HX-Trigger) after which the list's results reload themselves: a delete from the
# list, so the count above it follows.
CHARACTERS_CHANGED = "characters-changed"


@require_http_methods(["GET", "POST"])
@team_view("character.clone")
@live_character
def character_clone(request: TeamRequest, character: Character) -> HttpResponse:
    form = CloneForm(
        request.POST if request.method == "POST" else None,
        initial={"new_name": f"{character.name} (copy)"[:100]},
    )
    adopt = None
    key = character.bound_key
    owner_is_you = key is not None and key.owner_id == request.user.pk
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["new_name"] or f"{character.name} (copy)"
        done, adopt = made_on_convai(
            request,
            form,
            lambda: copying.clone_character(
                actor=request.membership,
                character_id=character.pk,
                new_name=name,
                include_kb=form.cleaned_data["include_kb"],
                token=form.cleaned_data["token"],
            ),
            success=lambda made: f"“{made.name}” is a copy of “{character.name}”.",
            name=name,
            own_key=key if owner_is_you else None,
        )
        if done is not None:
            return done
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "adopt": adopt,
        "owner_is_you": owner_is_you,
    }
    return render_page(request, "characters/character_clone.html", context, partial="confirm")


@require_http_methods(["GET", "POST"])
@team_view("character.delete")
@live_character
def character_delete(request: TeamRequest, character: Character) -> HttpResponse:
    """Type the name to confirm; the drift since the last save is shown first. From the list
    (htmx, `?from=list`) the row leaves the table; otherwise the browser goes to the list."""
    from_list = request.GET.get("from") == "list" or request.POST.get("from") == "list"
    allowed = policy.may(request.membership, "character.delete", character)
    drift: list[dict[str, Any]] = []
    drift_error = ""
    form = DeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        # Not allowed still goes to the service: the refusal is recorded where it is made.
        try:
            services.delete_character(
                actor=request.membership,
                character_id=character.pk,
                confirm_name=form.cleaned_data["confirm_name"],
                overwrite_drift=form.cleaned_data["overwrite_drift"],
                token=form.cleaned_data["token"],
            )
        except errors.OperationDone as error:
            # The same form sent twice: the first one deleted it.
            messages.info(request, error.message)
            return redirect(list_url(request))
        except policy.NotAllowed as error:
            form.add_error(None, error.message)
        except errors.NameMismatch as error:
            form.add_error("confirm_name", error.message)
        except errors.RemoteMissing:
            character.remote_missing_at = timezone.now()  # the page offers the removal
        except errors.Drift as error:
            drift = history.change_rows(
                error.changes, left="Last saved here", right="In Convai now"
            )
            data = request.POST.copy()
            data["overwrite_drift"] = "1"
            form = DeleteForm(data)
            form.is_valid()
            form.add_error(
                None,
                "Convai's copy changed since it was last saved here (below). Deleting removes "
                "those changes too. Delete anyway?",
            )
        except errors.CharacterError as error:
            form.add_error(None, error.message)
        else:
            return _deleted(request, character, from_list=from_list)
    elif request.method != "POST" and allowed:
        drift, drift_error = _drift_before_delete(request, character)
        if drift:
            form = DeleteForm(initial={"overwrite_drift": True})
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "allowed": allowed,
        "key_usable": bool(getattr(character, "key_usable", False)),
        "drift": drift,
        "drift_error": drift_error,
        "missing": character.remote_missing_at is not None,
        "from_list": from_list,
        "cancel_url": detail_url(request, character),
    }
    return answer_in_dialog(
        request,
        render_page(request, "characters/character_delete.html", context, partial="confirm"),
    )


def _deleted(request: TeamRequest, character: Character, *, from_list: bool) -> HttpResponse:
    messages.success(
        request, f"“{character.name}” was deleted on Convai. Its page and history stay here."
    )
    if request.htmx and from_list:
        # The row swaps itself out; the message arrives out of band; the list's results
        # (the count above them, the page) refresh on CHARACTERS_CHANGED.
        response = HttpResponse(render_to_string("characters/_messages_oob.html", request=request))
        response["HX-Trigger"] = CHARACTERS_CHANGED
        return response
    return redirect(list_url(request))


def _drift_before_delete(
    request: TeamRequest, character: Character
) -> tuple[list[dict[str, Any]], str]:
    """(rows of Convai's changes since the last save, or the message of a failed check),
    shown before the member confirms. A character gone from Convai is marked so: the page
    then offers the removal."""
    if not getattr(character, "key_usable", False) or character.remote_missing_at is not None:
        return [], ""
    try:
        changes = services.remote_drift(actor=request.membership, character_id=character.pk)
    except errors.RemoteMissing:
        character.remote_missing_at = timezone.now()
    except errors.CharacterError as error:
        return [], error.message
    else:
        return history.change_rows(changes, left="Last saved here", right="In Convai now"), ""
    return [], ""


@require_http_methods(["GET", "POST"])
@team_view("character.delete")
@live_character
def character_remove(request: TeamRequest, character: Character) -> HttpResponse:
    """Take a character Convai no longer has off the team's list (a tombstone; Convai is not
    asked to delete anything)."""

    def remove() -> str:
        services.remove_missing_character(actor=request.membership, character_id=character.pk)
        return f"“{character.name}” was removed from this team. Its page and history stay here."

    return confirm_or_act(
        request,
        template="characters/character_remove.html",
        context={"team": request.team, "character": character},
        act=remove,
        done_url=list_url(request),
        failed_url=detail_url(request, character),
    )


@require_http_methods(["GET", "POST"])
@team_view("character.rebind")
@live_character
def character_rebind(request: TeamRequest, character: Character) -> HttpResponse:
    candidates = [
        k
        for k in selectors.rebind_candidates(request.team.pk, character.bound_key)
        if k.pk != character.bound_key_id
    ]
    form = RebindForm(
        request.POST if request.method == "POST" else None,
        candidates=candidates,
        current=character.bound_key,
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = binding.rebind_character(
                actor=request.membership,
                character_id=character.pk,
                api_key_id=form.cleaned_data["api_key"],
            )
        except errors.CharacterError as error:
            form.add_error("api_key", error.message)
        else:
            key = saved.character.bound_key
            messages.success(
                request,
                f"“{saved.character.name}” now works through {key_choice_label(key)}"
                if key is not None
                else "Rebound.",
            )
            return redirect(detail_url(request, character))
    context = {
        "team": request.team,
        "character": character,
        "form": form,
        "candidates": candidates,
        "key_usable": bool(getattr(character, "key_usable", False)),
        "cancel_url": detail_url(request, character),
    }
    return answer_in_dialog(
        request,
        render_page(request, "characters/character_rebind.html", context, partial="confirm"),
    )
