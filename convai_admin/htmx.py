"""One rule for every page that htmx can also ask for in pieces, one body for every
confirm-then-act view, and where signing in again after an expired htmx request leads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

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
    return act_then_redirect(request, act=act, done_url=done_url, failed_url=failed_url)


def act_then_redirect(
    request: HttpRequest,
    *,
    act: Callable[[], str | None],
    done_url: str,
    failed_url: str | None = None,
) -> HttpResponse:
    """`act()`, then go to `done_url` with its success message (None: it said its own); a
    domain error becomes its message and goes to `failed_url` (else `done_url`). Not-found
    errors are 404s by their class. How every view that acts on a POST maps domain errors,
    instead of a try/except per view."""
    try:
        message = act()
    except NotFound:
        raise
    except DomainError as error:
        messages.error(request, error.message)
        return redirect_for(request, failed_url or done_url)
    if message is not None:
        messages.success(request, message)
    return redirect_for(request, done_url)


class HtmxSignInMiddleware:
    """An htmx request whose session expired is redirected to sign in with `next` = the URL it
    asked for: a fragment (a dialog's confirmation). Signing in would then land on that bare
    fragment page. This points `next` at the page the person was on (htmx's HX-Current-URL,
    when it is a page of this site) instead. HtmxRedirectMiddleware, outside this one, turns
    the redirect into a full-page HX-Redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.headers.get("HX-Request") == "true"
            and response.status_code in (301, 302, 303, 307, 308)
            and response.has_header("Location")
        ):
            location = urlsplit(response["Location"])
            if location.path == urlsplit(resolve_url(settings.LOGIN_URL)).path:
                page = _this_site_page(request, request.headers.get("HX-Current-URL", ""))
                if page:
                    query = QueryDict(location.query, mutable=True)
                    query[REDIRECT_FIELD_NAME] = page
                    location = location._replace(query=query.urlencode("/"))
                    response["Location"] = urlunsplit(location)
        return response


def _this_site_page(request: HttpRequest, url: str) -> str:
    """The path and query of `url` if it is a page of this site, else ""."""
    if not url or not url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
