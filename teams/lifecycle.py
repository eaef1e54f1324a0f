"""A team's life after creation: handing it over, archiving it (read-only) and deleting it.

Who may is teams.policy's answer (Owners; `ARCHIVED_ALLOWS` for an archived team), asked again
here since a view is not the only caller. Each operation and its audit event commit together;
a refusal found under the lock is recorded after the rollback. The typed confirmation (the
team's name) is the forms' job: these functions are the operations themselves.

Deleting is local: the characters stay on Convai with the keys that own them. Members,
invitations and every app's rows of the team go (the other apps' through `hooks.
remove_team_data`, which they fill); the team row stays, marked deleted, because the audit
log keeps the team's chain — closed by a last `team.deleted` event and sealed with a `seal`
checkpoint, so `audit_verify` still passes and anything appended later would show.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import record, seal_chain

from . import hooks, policy
from .errors import TeamError
from .invitations import revoke_with_maker
from .models import Departure, Invitation, Membership, Role, Team
from .services import (
    _changed_meanwhile,
    _lock_membership_changes,
    _lock_unchanged,
    _member_in_team,
    _record_failure,
    _record_member,
    _your_role_changed,
)


def _record_team(
    actor: Membership, action: str, details: dict[str, object], outcome: str = Outcome.SUCCESS
) -> None:
    record(
        action,
        actor=actor.user,
        team=actor.team,
        target_type="team",
        target_id=actor.team.pk,
        target_label=actor.team.name,
        outcome=outcome,
        details=details,
    )


def transfer_ownership(*, actor: Membership, membership_id: int) -> Membership:
    """The actor (an Owner) hands the team to another member, who becomes Owner; the actor
    becomes Admin, and their pending invitations above Admin stop working."""
    policy.authorize(actor, "team.transfer", event="team.ownership_transferred", target_type="team")
    target = _member_in_team(actor.team, membership_id)
    if target.pk == actor.pk:
        raise TeamError("Choose another member: the team is already yours.")
    old_role = Role(target.role)
    try:
        with transaction.atomic():
            if _lock_membership_changes(actor) != actor.role:
                raise _your_role_changed()
            if not _lock_unchanged(target):
                raise _changed_meanwhile()
            target.role = Role.OWNER
            target.save(update_fields=["role"])
            actor.role = Role.ADMIN
            actor.save(update_fields=["role"])
            revoked = revoke_with_maker(actor, actor, Role.ADMIN)
            _record_member(
                actor,
                "team.ownership_transferred",
                target=target,
                details={
                    "to": target.user.username,
                    "to_role": [old_role.value, Role.OWNER.value],
                    "from": actor.user.username,
                    "from_role": [Role.OWNER.value, Role.ADMIN.value],
                    "invitations_revoked": revoked,
                },
            )
    except TeamError as error:
        target.role = old_role
        actor.role = Role.OWNER
        _record_failure(actor, "team.ownership_transferred", error, target=target)
        raise
    return target


def archive_team(*, actor: Membership) -> Team:
    """Make the team read-only (policy.ARCHIVED_ALLOWS) until an Owner unarchives it. Work
    in progress stops with it (`hooks.stop_team_work`: the team's unfinished jobs are
    cancelled, a running one after the item it is on)."""
    policy.authorize(actor, "team.archive", event="team.archived", target_type="team")
    team = actor.team
    with transaction.atomic():
        if _lock_membership_changes(actor) != actor.role:
            raise _your_role_changed()
        if Team.objects.filter(pk=team.pk, archived_at__isnull=False).exists():
            raise TeamError(f"{team.name} is already archived.")
        team.archived_at = timezone.now()
        team.save(update_fields=["archived_at"])
        stopped = hooks.stop_team_work(team, actor.user)
        _record_team(
            actor,
            "team.archived",
            {"archived_at": team.archived_at.isoformat(), "stopped": stopped},
        )
    return team


def unarchive_team(*, actor: Membership) -> Team:
    policy.authorize(actor, "team.unarchive", event="team.unarchived", target_type="team")
    team = actor.team
    with transaction.atomic():
        if _lock_membership_changes(actor) != actor.role:
            raise _your_role_changed()
        if not Team.objects.filter(pk=team.pk, archived_at__isnull=False).exists():
            raise TeamError(f"{team.name} is not archived.")
        archived_at = team.archived_at
        team.archived_at = None
        team.save(update_fields=["archived_at"])
        _record_team(
            actor,
            "team.unarchived",
            {"archived_at": archived_at.isoformat() if archived_at else None},
        )
    return team


@dataclass(frozen=True)
class DeletedTeam:
    team: Team
    members: int
    invitations: int
    removed: dict[str, int]  # per app (characters, jobs, …): rows removed through its hook


def delete_team(*, actor: Membership) -> DeletedTeam:
    """Delete the team locally (see the module docstring): everything but its audit chain,
    which is closed by `team.deleted` and sealed."""
    policy.authorize(actor, "team.delete", event="team.deleted", target_type="team")
    team = actor.team
    with transaction.atomic():
        if _lock_membership_changes(actor) != actor.role:
            raise _your_role_changed()
        now = timezone.now()
        members = list(Membership.objects.filter(team=team).values_list("user_id", flat=True))
        Departure.objects.filter(team=team).delete()
        Departure.objects.bulk_create(
            Departure(team=team, user_id=user_id, reason=Departure.Reason.TEAM_DELETED)
            for user_id in members
        )
        removed = hooks.remove_team_data(team)
        invitations, _ = Invitation.objects.filter(team=team).delete()
        Membership.objects.filter(team=team).delete()
        team.deleted_at = now
        team.save(update_fields=["deleted_at"])
        _record_team(
            actor,
            "team.deleted",
            {
                "name": team.name,
                "slug": team.slug,
                "members": len(members),
                "invitations": invitations,
                "removed": removed,
            },
        )
        seal_chain(team)
    return DeletedTeam(team, len(members), invitations, removed)
