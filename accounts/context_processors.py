from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .selectors import memberships_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The team switcher's data: the user's teams and the one being looked at."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    current = getattr(request, "membership", None)
    return {
        "nav_memberships": memberships_for(user),
        "current_membership": current,
        "current_team": current.team if current is not None else None,
    }
