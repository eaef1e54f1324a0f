"""Read queries, always scoped to what the user may see."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from accounts import limits as sign_in_limits
from accounts.models import User

from . import hooks
from .models import Departure, Invitation, Membership, Role, Team


def memberships_for(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


def membership_for(user: User, team_slug: str) -> Membership | None:
    """The user's membership in the team, or None: another team simply does not exist."""
    return (
        Membership.objects.select_related("team", "user")
        .filter(user=user, team__slug=team_slug)
        .first()
    )


def departure_for(user: User, team_slug: str) -> Departure | None:
    """Whether the user was a member of that team and no longer is (None: never was, or the
    team does not exist — the two look the same)."""
    return Departure.objects.select_related("team").filter(user=user, team__slug=team_slug).first()


def transfer_candidates(team: Team, actor: Membership) -> QuerySet[Membership]:
    """The members an Owner may hand the team to: everyone else in it."""
    return team_members(team).exclude(pk=actor.pk)


def deletion_counts(team: Team) -> dict[str, int]:
    """What deleting the team takes away, for its confirmation page."""
    return {
        "members": team_member_count(team),
        "invitations": pending_invitation_count(team),
        **hooks.team_contents(team),
    }


def team_members(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def pending_invitations(team: Team) -> QuerySet[Invitation]:
    from django.utils import timezone

    return (
        Invitation.objects.filter(
            team=team,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .select_related("created_by")
        .order_by("-created_at")
    )


def team_member_count(team: Team) -> int:
    return Membership.objects.filter(team=team).count()


def team_member(team: Team, membership_id: int) -> Membership | None:
    """One member of the team, or None (a membership of another team does not exist here)."""
    return Membership.objects.select_related("user").filter(team=team, pk=membership_id).first()


def pending_invitation_count(team: Team) -> int:
    return pending_invitations(team).count()


def closed_invitations(team: Team, limit: int = 20) -> QuerySet[Invitation]:
    """Recently used, revoked or expired invitations, for the admins' history view."""
    from django.db.models import Q
    from django.utils import timezone

    return (
        Invitation.objects.filter(team=team)
        .filter(
            Q(accepted_at__isnull=False)
            | Q(revoked_at__isnull=False)
            | Q(expires_at__lte=timezone.now())
        )
        .select_related("created_by", "accepted_by")
        .order_by("-created_at")[:limit]
    )


def team_invitation(team: Team, invitation_id: int) -> Invitation | None:
    return (
        Invitation.objects.select_related("created_by").filter(team=team, pk=invitation_id).first()
    )


def membership_ids_of(team: Team, user_id: int) -> list[int]:
    """The user's membership IDs in the team (none once they left): what the audit log's
    "by or about this member" filter matches on."""
    return list(Membership.objects.filter(team=team, user_id=user_id).values_list("pk", flat=True))


def owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


def locked_usernames(users: Sequence[User]) -> set[str]:
    """Which of these people cannot sign in right now (too many wrong passwords or two-factor
    codes): one cache read over allauth's per-account counters (accounts.limits)."""
    return sign_in_limits.locked_usernames(users)
