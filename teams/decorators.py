"""`team_view(action)`: how every team-scoped view is authorized, through the policy.

Anonymous → sign-in; not a member → 404 (another team's data does not exist for you), except
for a former member (a `Departure` row: removed, left, team deleted), who gets a 403 page saying
"You no longer have access to <team>" — someone who never belonged learns nothing; a member
without two-factor in a team that requires it → only the page asking them to set it up (403);
a member whose role is below the action's floor → 403, recorded once here (`policy.authorize`). The
service called next checks the full rule again, with its target: a view is not the only caller.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import has_two_factor

from . import policy
from .http import TeamRequest
from .selectors import departure_for, membership_for

CURRENT_TEAM_SESSION_KEY = "current_team_slug"

ViewFunc = Callable[..., HttpResponse]


def team_view(action: str) -> Callable[[ViewFunc], ViewFunc]:
    """Resolve `team_slug` from the URL into request.team / .membership / .can, and refuse
    members below the floor of `action` (see teams.policy.FLOOR)."""
    policy.floor(action)  # an unknown action fails at import time, not at request time

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, team_slug: str, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_for(request.user, team_slug)
            if membership is None:
                departure = departure_for(request.user, team_slug)
                if departure is None:
                    raise Http404("No such team.")
                return render(
                    request,
                    "teams/no_longer_member.html",
                    {"departure": departure, "former_team": departure.team},
                    status=403,
                )
            team_request = cast(TeamRequest, request)
            team_request.membership = membership
            team_request.team = membership.team
            team_request.can = policy.Can(membership)
            if policy.two_factor_missing(
                membership, has_two_factor=lambda: has_two_factor(membership.user)
            ):
                return render(
                    request,
                    "teams/two_factor_required.html",
                    {"team": membership.team},
                    status=403,
                )
            if request.session.get(CURRENT_TEAM_SESSION_KEY) != membership.team.slug:
                # Only when it changes: writing it always would save the session every request.
                request.session[CURRENT_TEAM_SESSION_KEY] = membership.team.slug
            try:
                policy.authorize_attempt(
                    membership,
                    action,
                    target_type="page",
                    target_label=request.path[:200],
                    details={"method": request.method},
                )
            except policy.NotAllowed as error:
                raise PermissionDenied(error.message) from None
            return view(team_request, *args, **kwargs)

        # The switcher asks which action a page needs before sending someone there
        # (functools.wraps carries it to the decorators outside this one).
        wrapper.__dict__["team_action"] = action
        return wrapper

    return decorator
