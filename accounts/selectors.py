"""Read queries, always scoped to what the user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ApiKey, Invitation, Membership, Team, User


def memberships_for(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


def membership_for(user: User, team_slug: str) -> Membership | None:
    """The user's membership in the team, or None: another team simply does not exist."""
    return (
        Membership.objects.select_related("team", "user")
        .filter(user=user, team__slug=team_slug)
        .first()
    )


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


def api_keys_for(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=user, revoked_at__isnull=True).order_by("-created_at")
