"""Entry points that are not tied to one team: home."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from .permissions import CURRENT_TEAM_SESSION_KEY
from .selectors import memberships_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the team they last worked in, or to create their first team."""
    memberships = list(memberships_for(request.user))  # type: ignore[arg-type]
    if not memberships:
        return redirect("team_create")
    last = request.session.get(CURRENT_TEAM_SESSION_KEY)
    chosen = next((m for m in memberships if m.team.slug == last), memberships[0])
    return redirect("team_overview", team_slug=chosen.team.slug)
