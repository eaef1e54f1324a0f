"""The one base class of domain errors, and how a view turns them into what a user sees.

A service raises a `DomainError` whose message can be shown as it is (it never holds a secret);
`NotFound` is also an `Http404`, so a lookup that fails inside a service answers 404 wherever
it was called from. Any other domain error a view did not catch itself becomes a flash message
and a redirect back (`DomainErrorMiddleware`): one place, instead of a try/except per view.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect


class DomainError(Exception):
    """A rule refused the operation; `message` is for the user."""

    default_message = "That could not be done."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class NotFound(DomainError, Http404):
    """No such thing here (another team's data does not exist for you): answers 404."""

    default_message = "That does not exist (any more)."


def back_url(request: HttpRequest, fallback: str = "teams:home") -> str:
    """Where "back" is: the same-site page the request came from, else `fallback`."""
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return resolve_url(fallback)


def client_redirect(url: str) -> HttpResponse:
    """The one way an htmx request is sent to another page (django-htmx's HX-Redirect, with
    no body): the browser navigates instead of swapping a whole page into a fragment's place."""
    return HttpResponseClientRedirect(url, status=204)


def redirect_for(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works for htmx (see client_redirect)."""
    if getattr(request, "htmx", False):
        return client_redirect(url)
    return HttpResponseRedirect(url)


class DomainErrorMiddleware:
    """A domain error that reached the top: say it, and go back where the user was."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DomainError) and not isinstance(exception, Http404):
            messages.error(request, exception.message)
            return redirect_for(request, back_url(request))
        return None
