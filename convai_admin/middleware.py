"""Cross-cutting request plumbing: request IDs (for logs and the audit trail), Vary, htmx
redirects, no-store for signed-in pages, and refusing requests no view could read."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control, patch_vary_headers

from .errors import client_redirect

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_DECIMAL = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also takes "²"


def current_request_id() -> str:
    return _request_id.get()


class RequestIDMiddleware:
    """Give every request an ID: a well-formed incoming X-Request-ID, or a fresh UUID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class VaryOnHtmxMiddleware:
    """Pages answer htmx with a fragment and everyone else with the full page: caches must
    keep the two apart, so every response varies on HX-Request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        patch_vary_headers(response, ("HX-Request",))
        return response


class RequestIDLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class HtmxRedirectMiddleware:
    """An htmx request answered by a redirect (an expired session sent to sign-in, a form
    that redirects after success) makes the browser navigate there, instead of htmx
    following it and swapping a whole page into a fragment's place."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.headers.get("HX-Request") == "true"
            and response.status_code in (301, 302, 303, 307, 308)
            and response.has_header("Location")
        ):
            redirect = client_redirect(response["Location"])
            redirect.cookies = response.cookies
            return redirect
        return response


class NoStoreForSignedInMiddleware:
    """A signed-in page holds a team's data: no browser or shared cache may keep a copy (the
    back button after signing out on a shared computer, a proxy). Static files are served
    before this (WhiteNoise) and stay cacheable; the sign-in page is not signed in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response


# --- Requests no view could read ------------------------------------------------------------------

_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# An upload form's other fields and its multipart framing, on top of the file itself.
UPLOAD_FORM_OVERHEAD = 64 * 1024


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def body_limit(view_name: str | None) -> int | None:
    """The most bytes a request to this view may announce: an upload view's file setting
    (settings.REQUEST_UPLOAD_LIMITS names it) plus the form around the file, else Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (None: no limit)."""
    setting = settings.REQUEST_UPLOAD_LIMITS.get(view_name or "")
    if setting:
        return int(getattr(settings, setting)) + UPLOAD_FORM_OVERHEAD
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return None if limit is None else int(limit)


def _file_limit(view_name: str | None) -> int | None:
    """What a person is told the limit is: the file's own limit on an upload page."""
    setting = settings.REQUEST_UPLOAD_LIMITS.get(view_name or "")
    return int(getattr(settings, setting)) if setting else body_limit(view_name)


def refuse(request: HttpRequest, status: int, *, title: str, reason: str) -> HttpResponse:
    """The product's 400/413 page for a request that was not read."""
    context = {"title": title, "reason": reason}
    return render(request, f"{status}.html", context, status=status)


class RequestShapeMiddleware:
    """Refuse a request that no view could read, before anything reads its body.

    CsrfViewMiddleware reads a POST's form to find its token, so this sits before it in
    MIDDLEWARE (process_view runs in that order, after the URL is resolved and the user is
    known): a malformed Content-Length is a 400 instead of a ValueError; a form in another
    character set than UTF-8 is a 400 instead of Django's BadRequest or silent mojibake; and a
    body announced larger than the view accepts is a 413 decided on Content-Length alone, so
    the server answers at once instead of reading (or waiting for) 200 MB first. Refusing is
    safe before the CSRF check: nothing is changed or shown but the refusal itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: object, view_args: object, view_kwargs: object
    ) -> HttpResponse | None:
        announced = request.META.get("CONTENT_LENGTH", "")
        if announced and not _DECIMAL.fullmatch(announced):
            return refuse(
                request,
                400,
                title="Your browser sent a request we could not read",
                reason="Its Content-Length header is not a number of bytes. Reload the page "
                "and try again; if it keeps happening, a proxy or extension between you and "
                "this site is changing requests.",
            )
        charset = request.content_params.get("charset") if request.content_params else None
        if (
            request.content_type in _FORM_TYPES
            and charset is not None
            and charset.strip().lower() != "utf-8"
        ):
            return refuse(
                request,
                400,
                title="This form was sent in a way we cannot read",
                reason="It was encoded in another character set than UTF-8, so letters "
                "outside plain English would be garbled. Nothing was saved. Reload the page "
                "and submit the form again from your browser.",
            )
        size = int(announced or 0)
        match = request.resolver_match
        view_name = match.view_name if match is not None else None
        limit = body_limit(view_name)
        if limit is not None and size > limit:
            allowed = _file_limit(view_name) or limit
            return refuse(
                request,
                413,
                title="That is too large to send",
                reason=f"It is {_megabytes(size)}; this page accepts at most "
                f"{_megabytes(allowed)}. Nothing was read or saved. Choose a smaller file "
                "(or send less at once) and try again.",
            )
        return None
