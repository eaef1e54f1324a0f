"""Authorization in one place.

`team_view(min_role)` wraps every team-scoped view: anonymous → sign-in, not a member → 404
(another team's data does not exist for you), member with too small a role → 403. Services
re-check with `require_role`, so no code path skips the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from .models import Membership, Role
from .selectors import membership_for

CURRENT_TEAM_SESSION_KEY = "current_team_slug"


class RoleRequired(PermissionDenied):
    """The member's role is too small for the operation."""

    def __init__(self, minimum: str) -> None:
        self.minimum = Role(minimum)
        super().__init__(f"This needs the {self.minimum.label} role or higher in this team.")


def require_role(membership: Membership, minimum: str) -> None:
    if not membership.has_role(minimum):
        raise RoleRequired(minimum)


ViewFunc = Callable[..., HttpResponse]


def _record_denial(request: HttpRequest, membership: Membership, minimum: str) -> None:
    """A member reaching for something above their role is worth an audit line."""
    from audit.models import Outcome
    from audit.services import record

    record(
        "access.denied",
        actor=membership.user,
        team=membership.team,
        request=request,
        target_type="page",
        target_label=request.path[:200],
        outcome=Outcome.DENIED,
        details={"method": request.method, "role": membership.role, "required": minimum},
    )


def team_view(minimum: str = Role.VIEWER) -> Callable[[ViewFunc], ViewFunc]:
    """Resolve `team_slug` from the URL into request.team / request.membership."""

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, team_slug: str, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_for(request.user, team_slug)
            if membership is None:
                raise Http404("No such team.")
            request.membership = membership  # type: ignore[attr-defined]
            request.team = membership.team  # type: ignore[attr-defined]
            if request.session.get(CURRENT_TEAM_SESSION_KEY) != membership.team.slug:
                # Only when it changes: writing it always would save the session every request.
                request.session[CURRENT_TEAM_SESSION_KEY] = membership.team.slug
            if not membership.has_role(minimum):
                _record_denial(request, membership, minimum)
            require_role(membership, minimum)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
