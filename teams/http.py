"""The request a team-scoped view receives from `team_view`."""

from __future__ import annotations

from convai_admin.http import AuthenticatedRequest

from .models import Membership, Team
from .policy import Can


class TeamRequest(AuthenticatedRequest):
    team: Team
    membership: Membership
    can: Can
