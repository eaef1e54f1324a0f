"""A database that is busy answers "busy, try again", never a 500.

PostgreSQL gives up waiting for a lock after `lock_timeout` (SQLSTATE 55P03, lock not
available) and breaks deadlocks (40P01); SQLite says "database is locked" after its timeout.
Each means another request or a job holds what this one needs (a frozen worker's open
transaction, until `idle_in_transaction_session_timeout` ends it): nothing was changed (the
transaction rolled back), and the same request will very likely work in a few seconds. The
user is told so with a 503 page (Retry-After), or a message in place for htmx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger("convai_admin.db")

BUSY_SQLSTATES = {"55P03", "40P01"}  # lock_not_available, deadlock_detected
RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "The database is busy with another change to the same data (another member's save or a "
    "background job), so nothing was changed. Wait a few seconds and try again."
)


def sqlstate(error: BaseException) -> str:
    """The SQLSTATE of a database error (Django's wrapper keeps the driver's as its cause)."""
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return ""


def is_busy(error: BaseException) -> bool:
    if not isinstance(error, OperationalError):
        return False
    if sqlstate(error) in BUSY_SQLSTATES:
        return True
    return "database is locked" in str(error)


class DatabaseBusyMiddleware:
    """Turns a lock timeout or a deadlock into a 503 "busy, try again" answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_busy(exception):
            return None
        logger.warning(
            "%s %s: database busy (%s), answered 503",
            request.method,
            request.path,
            sqlstate(exception) or "locked",
        )
        htmx = bool(getattr(request, "htmx", False))
        template = "busy.html#busy" if htmx else "busy.html"
        body = render_to_string(template, {"message": MESSAGE}, request=request)
        response = HttpResponse(body, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if htmx:
            # htmx does not swap error answers by default: say where the message goes.
            response["HX-Retarget"] = "#messages"
            response["HX-Reswap"] = "innerHTML"
        return response
