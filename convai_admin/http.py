"""Request types the views can rely on, so nothing needs `type: ignore` to reach what
middleware and decorators put on a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    """Every request: HtmxMiddleware sets `htmx`, RequestIDMiddleware `request_id`."""

    htmx: HtmxDetails
    request_id: str


class AuthenticatedRequest(HtmxHttpRequest):
    """A request behind login_required / team_view: `user` is a real account."""

    user: User
