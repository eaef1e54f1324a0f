"""One rule for every page that htmx can also ask for in pieces, and one body for every
confirm-then-act view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .errors import DomainError, NotFound, redirect_for


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, partial: str
) -> HttpResponse:
    """The named partial when htmx asked (e.g. a confirmation loaded into the dialog), the
    whole page otherwise, so the same URL works with and without JavaScript."""
    name = f"{template}#{partial}" if getattr(request, "htmx", False) else template
    return render(request, name, context)


def confirm_or_act(
    request: HttpRequest,
    *,
    template: str,
    context: dict[str, Any],
    act: Callable[[], str],
    done_url: str,
    failed_url: str | None = None,
) -> HttpResponse:
    """GET: the confirmation (the `confirm` partial in the dialog, or a page). POST: `act()`,
    whose return is the success message; a domain error becomes its message instead.
    Not-found errors are 404s by their class (convai_admin.errors.NotFound).

    The confirmation posts back to the same URL; Cancel goes to `failed_url` (else
    `done_url`) — includes/confirm_form.html reads both from the context given here."""
    if request.method != "POST":
        context = {**context, "confirm_action": request.path, "cancel_url": failed_url or done_url}
        return render_page(request, template, context, partial="confirm")
    try:
        message = act()
    except NotFound:
        raise
    except DomainError as error:
        messages.error(request, error.message)
        return redirect_for(request, failed_url or done_url)
    messages.success(request, message)
    return redirect_for(request, done_url)
