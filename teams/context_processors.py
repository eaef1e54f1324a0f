from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .decorators import CURRENT_TEAM_SESSION_KEY
from .policy import Can, may_create_team
from .selectors import memberships_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The navigation's data: the user's teams, the team being looked at (on a team page) or
    last worked in (elsewhere, e.g. API keys), and `can`, the policy's answers for the current
    membership on team pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    current = getattr(request, "membership", None)
    memberships = list(memberships_for(user))
    slug = (
        current.team.slug if current is not None else request.session.get(CURRENT_TEAM_SESSION_KEY)
    )
    nav_membership = next((m for m in memberships if m.team.slug == slug), None)
    return {
        "nav_memberships": memberships,
        "nav_membership": nav_membership,
        "current_membership": current,
        "current_team": current.team if current is not None else None,
        "may_create_team": may_create_team(user),
        # On pages outside a team (API keys) the navigation still answers for the team it
        # shows, so the same links appear everywhere.
        "can": getattr(request, "can", None)
        or (Can(nav_membership) if nav_membership is not None else None),
    }
