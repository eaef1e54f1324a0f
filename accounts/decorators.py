"""Re-authentication before the sensitive steps: adding an API key, changing a member's role,
exporting the audit log (and, inside allauth, revealing recovery codes and changing two-factor).

One decorator for all of them, over allauth's: a person who has not entered their password, a
code or a passkey within ACCOUNT_REAUTHENTICATION_TIMEOUT is sent to "Confirm it's you" and
brought back. allauth keeps a refused POST in the session to replay it after confirming; with
`keep_post=False` it does not (the form holds a secret such as an API key, which must never be
written to the session store): the page itself stays open, its submission asks, and the
person comes back to the page and submits again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from allauth.account.adapter import get_adapter
from allauth.account.internal.flows.reauthentication import is_reauthentication_required
from allauth.core.exceptions import ReauthenticationRequired
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import urlencode

View = TypeVar("View", bound=Callable[..., HttpResponse])

REAUTHENTICATE_FIRST = (
    "For your security, confirm it\N{RIGHT SINGLE QUOTATION MARK}s you first. Then submit "
    "the form again: what you typed was not kept."
)


def _reauthenticate_url(request: HttpRequest, next_url: str) -> str:
    methods = get_adapter(request).get_reauthentication_methods(request.user)
    return f"{methods[0]['url']}?{urlencode({REDIRECT_FIELD_NAME: next_url})}"


def reauthentication_required(view: View | None = None, *, keep_post: bool = True) -> Any:
    def decorate(view_func: View) -> View:
        @wraps(view_func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not keep_post and request.method != "POST":
                return view_func(request, *args, **kwargs)  # the page itself is open
            if request.user.is_authenticated and is_reauthentication_required(request, app=""):
                if not keep_post:
                    messages.info(request, REAUTHENTICATE_FIRST)
                    return HttpResponseRedirect(_reauthenticate_url(request, request.path))
                # allauth's AccountMiddleware answers: redirect, and replay afterwards.
                raise ReauthenticationRequired()
            return view_func(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
