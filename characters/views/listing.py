"""The characters list: search, filter, sort and page; the creates, clones and deletes not
finished yet, and "Check now" for them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from convai_admin.htmx import render_page
from teams import policy
from teams.decorators import team_view
from teams.http import TeamRequest

from .. import errors, operations, presenters, reconciliation, selectors
from ..forms import FilterForm
from ..templatetags.characters_extras import ago
from .common import detail_url, list_url, names

PAGE_SIZE = 50


@require_GET
@team_view("character.view")
def character_list(request: TeamRequest) -> HttpResponse:
    """Search, filter, sort and page the team's characters; htmx swaps only the results."""
    team = request.team
    voice_names, language_names = names()
    form = FilterForm(request.GET)
    filters = form.filters()
    filtered = any(
        [filters.q, filters.voice, filters.language, filters.key, filters.unusable, filters.changed]
    )
    page, characters = selectors.character_page(team, filters, request.GET.get("page"), PAGE_SIZE)
    rows = presenters.list_rows(request.membership, characters, voice_names, language_names)
    context = {
        "team": team,
        "form": form,
        "page": page,
        "rows": rows,
        "filtered": filtered,
        # An unfiltered first page without rows: the team has no characters yet.
        "team_has_characters": bool(rows) or filtered,
    }
    if not request.htmx:
        # The filter bar and the banners exist only on the full page: an htmx refresh skips
        # their query.
        state = selectors.list_page_state(team, request.user)
        context["filter_options"] = presenters.filter_options(
            state.facets,
            voice_names,
            language_names,
            {"voice": filters.voice, "language": filters.language, "key": filters.key},
        )
        context["has_usable_key"] = state.has_usable_key
        context["operations"] = _operations(request) if state.has_pending_operations else []
    elif not rows:
        context["has_usable_key"] = selectors.usable_keys_for(request.user).exists()
    return render_page(request, "characters/character_list.html", context, partial="results")


def _operations(request: TeamRequest) -> list[dict[str, Any]]:
    """The team's creates, clones and deletes that have not finished: in progress, or (past
    the longest a request can take) "Outcome unknown: check Convai", with "Check now" for
    whoever may do the operation."""
    rows = []
    for operation in selectors.pending_operations(request.team):
        action = operations.OPERATION_ACTIONS[operation.kind]
        target = operation.character if operation.kind != "create" else None
        rows.append(
            {
                "pk": operation.pk,
                "kind": operation.get_kind_display(),
                "kind_code": operation.kind,
                "name": operation.name,
                "by": operation.actor.display_name if operation.actor else "Someone",
                "at": operation.created_at,
                "ago": ago(operation.created_at),
                "overdue": getattr(operation, "overdue", False),
                "stuck": getattr(operation, "stuck", False),
                "may_check": policy.may(request.membership, action, target),
            }
        )
    return rows


@require_POST
@team_view("character.view")
def operation_check(request: TeamRequest, operation_id: int) -> HttpResponse:
    """ "Check now": ask Convai what became of a create, clone or delete whose outcome is
    unknown, and settle it here (the policy of the operation itself is checked by the
    service)."""
    try:
        operation, outcome = reconciliation.check_operation(
            actor=request.membership, operation_id=operation_id
        )
    except (policy.NotAllowed, errors.CharacterError) as error:
        messages.error(request, error.message)
        return redirect(list_url(request))
    kind = operation.get_kind_display().lower()
    if outcome in (reconciliation.Resolution.ADOPTED, reconciliation.Resolution.DELETED) or (
        outcome == reconciliation.Resolution.DONE and operation.state == operation.State.DONE
    ):
        target = operation.result or operation.character
        if operation.kind == operation.Kind.DELETE:
            messages.success(request, f"Convai confirms the {kind} of “{operation.name}”: done.")
        else:
            messages.success(
                request, f"Convai has “{operation.name}”: the {kind} happened; it is here now."
            )
            if target is not None:
                return redirect(detail_url(request, target))
    elif operation.state == operation.State.FAILED:
        messages.info(
            request, f"The {kind} of “{operation.name}” did not happen: {operation.message}"
        )
    else:
        messages.warning(
            request,
            f"Convai could not tell yet what became of the {kind} of “{operation.name}”. It is "
            "checked again automatically; try “Check now” in a minute.",
        )
    return redirect(list_url(request))


@require_POST
@team_view("character.view")
def operation_dismiss(request: TeamRequest, operation_id: int) -> HttpResponse:
    """ "Dismiss": give up on an operation no key can ask Convai about any more (the policy
    of the operation itself and whether it is stuck are the service's to check)."""
    try:
        operation = reconciliation.dismiss_operation(
            actor=request.membership, operation_id=operation_id
        )
    except (policy.NotAllowed, errors.CharacterError) as error:
        messages.error(request, error.message)
        return redirect(list_url(request))
    kind = operation.get_kind_display().lower()
    found_by_import = (
        ""
        if operation.kind == operation.Kind.DELETE
        else " If Convai did make it, “Import” with a key of that Convai account finds it."
    )
    messages.info(request, f"The {kind} of “{operation.name}” is dismissed.{found_by_import}")
    return redirect(list_url(request))
