"""Where an action comes from, for the audit trail — without passing an HttpRequest around.

Middleware sets the context for each request (IP, user agent, request ID); management commands
and background tasks set their own (`origin="command rotate_encryption_keys"`). Services only
name the actor; `audit.services.record` reads the rest from here.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from django.http import HttpRequest, HttpResponse

from convai_admin.middleware import current_request_id
from convai_admin.net import client_ip


@dataclass(frozen=True)
class AuditContext:
    ip_address: str | None = None
    user_agent: str = ""
    request_id: str = ""
    origin: str = ""


_EMPTY = AuditContext()
_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "audit_context", default=None
)


def current() -> AuditContext:
    """The context of the running request/command/task; the request ID is always fresh."""
    context = _context.get() or _EMPTY
    request_id = current_request_id()
    if not context.request_id and request_id != "-":
        context = replace(context, request_id=request_id)
    return context


@contextmanager
def audit_context(
    *, origin: str, ip_address: str | None = None, user_agent: str = "", request_id: str = ""
) -> Iterator[AuditContext]:
    """Run a block (a command, a task) with its own audit context."""
    context = AuditContext(
        ip_address=ip_address, user_agent=user_agent[:400], request_id=request_id, origin=origin
    )
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def context_from_request(request: HttpRequest) -> AuditContext:
    return AuditContext(
        ip_address=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
        origin="web",
    )


class AuditContextMiddleware:
    """Sets the audit context for the request (after RequestIDMiddleware gave it an ID)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _context.set(context_from_request(request))
        try:
            return self.get_response(request)
        finally:
            _context.reset(token)
