"""The teams app's domain errors (teams.services and teams.invitations raise them; views map
them to messages, and not-found errors to 404s)."""

from __future__ import annotations

from convai_admin.errors import DomainError, NotFound


class TeamError(DomainError):
    """A rule of teams or invitations refused the operation."""


class TwoFactorNeededFirst(TeamError):
    default_message = (
        "Turn on two-factor for your own account first: otherwise the requirement would "
        "shut you out of the team."
    )


class LastOwnerError(TeamError):
    """The operation would leave the team without an Owner."""


class ChangedMeanwhile(TeamError):
    """A role or membership changed between reading the page and acting on it."""


class MemberNotFound(NotFound):
    default_message = "That person is not a member of this team (any more)."


class InvitationNotFound(NotFound):
    default_message = "This invitation link is not valid. Check that it was copied whole."


class InvitationUnusable(TeamError):
    """The invitation exists but can no longer be used: expired, revoked or already used."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class AlreadyMember(TeamError):
    """The person is already in the team; the invitation is left unused for someone else."""


class UsernameTaken(TeamError):
    """The username was taken between validation and creation."""
