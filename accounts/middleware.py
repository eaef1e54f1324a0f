"""When each session was last seen, for the Sessions page, at a bounded cost.

allauth's own activity tracking (USERSESSIONS_TRACK_ACTIVITY) writes on every request. This
writes at most once per SESSION_LAST_SEEN_SECONDS per session: the session itself remembers
when it was last written (set at sign-in, accounts.signals), so the other requests cost no
query at all, and sessions that did not sign in through allauth (none in production) are left
alone."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from convai_admin.net import client_ip

from .models import User
from .services import LAST_SEEN_SESSION_KEY, touch_session


class SessionLastSeenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is None or not isinstance(user, User) or not session.session_key:
            return response
        stamp = session.get(LAST_SEEN_SESSION_KEY)
        now = time.time()
        if isinstance(stamp, int | float) and now - stamp >= settings.SESSION_LAST_SEEN_SECONDS:
            touch_session(actor=user, session_key=session.session_key, ip=client_ip(request))
            session[LAST_SEEN_SESSION_KEY] = now
        return response
