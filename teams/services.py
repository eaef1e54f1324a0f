"""Team and membership operations: every write and its audit event live here (invitations:
teams.invitations; errors: teams.errors).

Who may do what is teams.policy's answer; these functions ask it again (a view is not the only
caller) together with the rules that need the database under a lock (the last Owner, a role
changed meanwhile). A success and its audit event commit in one transaction; a refusal or
failure is recorded after the rollback, so that it stays. Errors are `DomainError`s whose
message is for the user.

Power granted through a person ends with that person's power: removing a member revokes the
pending invitations they made; demoting one revokes those above what their new role may invite
(teams.invitations.revoke_with_maker, inside the member change's transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts import limits as sign_in_limits
from accounts.models import User
from accounts.selectors import has_two_factor
from audit.models import Outcome
from audit.services import record

from . import policy
from .errors import (
    ChangedMeanwhile,
    LastOwnerError,
    MemberNotFound,
    TeamError,
    TwoFactorNeededFirst,
)
from .invitations import revoke_with_maker
from .models import Departure, Membership, Role, Team

SLUG_MAX_LENGTH = 50


# --- Teams ---------------------------------------------------------------------------------------


def unique_team_slug(name: str) -> str:
    """A URL slug from the name, suffixed -2, -3… when taken (slugs never change on rename)."""
    base = slugify(name)[:SLUG_MAX_LENGTH].strip("-") or "team"
    candidate = base
    suffix = 2
    while Team.objects.filter(slug=candidate).exists():
        tail = f"-{suffix}"
        candidate = f"{base[: SLUG_MAX_LENGTH - len(tail)]}{tail}"
        suffix += 1
    return candidate


def create_team(*, actor: User, name: str, slug: str | None = None) -> Team:
    """Create a team with the creator as its Owner (who may: settings.TEAM_CREATION)."""
    policy.authorize_team_creation(actor)
    name = name.strip()
    for _attempt in range(5):
        try:
            with transaction.atomic():
                team = Team.objects.create(
                    name=name, slug=slug or unique_team_slug(name), created_by=actor
                )
                Membership.objects.create(team=team, user=actor, role=Role.OWNER)
                record(
                    "team.created",
                    actor=actor,
                    team=team,
                    target_type="team",
                    target_id=team.pk,
                    target_label=team.name,
                    details={"name": team.name, "slug": team.slug},
                )
            return team
        except IntegrityError:  # a concurrent create took the slug; pick the next one
            slug = None
            continue
    raise TeamError("Could not create the team right now. Please try again.")  # pragma: no cover


def rename_team(*, actor: Membership, name: str) -> Team:
    """Owners rename the team; the slug (and so every bookmarked link) stays the same."""
    team = actor.team
    policy.authorize(actor, "team.rename", event="team.renamed", target_type="team")
    old = team.name
    new = name.strip()
    if new == old:
        return team
    with transaction.atomic():
        team.name = new
        team.save(update_fields=["name"])
        record(
            "team.renamed",
            actor=actor.user,
            team=team,
            target_type="team",
            target_id=team.pk,
            target_label=new,
            details={"name": [old, new]},
        )
    return team


def set_two_factor_requirement(*, actor: Membership, required: bool) -> Team:
    """Owners require (or stop requiring) two-factor of every member. An Owner without it
    cannot require it: the team would shut them out."""
    team = actor.team
    policy.authorize(
        actor, "team.require_two_factor", event="team.two_factor_required", target_type="team"
    )
    old = team.require_two_factor
    if required == old:
        return team
    if required and not has_two_factor(actor.user):
        raise TwoFactorNeededFirst()
    with transaction.atomic():
        team.require_two_factor = required
        team.save(update_fields=["require_two_factor"])
        record(
            "team.two_factor_required",
            actor=actor.user,
            team=team,
            target_type="team",
            target_id=team.pk,
            target_label=team.name,
            details={"required": [old, required]},
        )
    return team


# --- Members -------------------------------------------------------------------------------------


def _member_in_team(team: Team, membership_id: int) -> Membership:
    member = (
        Membership.objects.select_related("user", "team")
        .filter(team=team, pk=membership_id)
        .first()
    )
    if member is None:
        raise MemberNotFound()
    return member


def _changed_meanwhile() -> TeamError:
    return ChangedMeanwhile(
        "That member's role changed or they left while you were looking. Reload the page and "
        "try again."
    )


def _your_role_changed() -> TeamError:
    return ChangedMeanwhile(
        "Your own role in this team changed while you were looking. Reload the page and try again."
    )


def _lock_membership_changes(actor: Membership) -> str | None:
    """Inside a transaction: lock the team row, so the team's membership changes run one at a
    time (none can race past the last-Owner rule, nor deadlock on another's member rows), and
    return the actor's role as it is now (None once they are gone): the membership read at the
    start of the request may be stale — they may have been demoted or removed meanwhile."""
    Team.objects.select_for_update().filter(pk=actor.team_id).values_list("pk").first()
    return Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()


def _owner_count_locked(team: Team) -> int:
    """Owners of the team, with their rows locked so two demotions cannot race past the rule."""
    return len(
        list(
            Membership.objects.select_for_update()
            .filter(team=team, role=Role.OWNER)
            .values_list("pk", flat=True)
        )
    )


def _lock_unchanged(target: Membership) -> bool:
    """Lock the member's row; False when it is gone or its role changed since it was read."""
    return Membership.objects.select_for_update().filter(pk=target.pk, role=target.role).exists()


def _record_member(
    actor: Membership,
    action: str,
    *,
    target: Membership,
    details: dict[str, object],
    outcome: str = Outcome.SUCCESS,
) -> None:
    """An audit event about one membership of the actor's team."""
    record(
        action,
        actor=actor.user,
        team=actor.team,
        target_type="membership",
        target_id=target.pk,
        target_label=target.user.display_name,
        outcome=outcome,
        details=details,
    )


def _record_failure(
    actor: Membership, action: str, error: TeamError, *, target: Membership
) -> None:
    """A refusal found under the lock (last Owner, changed meanwhile), recorded after the
    transaction rolled back so that it stays in the log."""
    _record_member(
        actor,
        action,
        target=target,
        details={"reason": type(error).__name__, "role": target.role},
        outcome=Outcome.FAILURE,
    )


def _depart(member: Membership, reason: str) -> None:
    """Remember that the person was a member (their team URLs then say "no longer", not 404)."""
    Departure.objects.update_or_create(
        team_id=member.team_id,
        user_id=member.user_id,
        defaults={"reason": reason, "departed_at": timezone.now()},
    )


@dataclass(frozen=True)
class MemberChange:
    member: Membership
    invitations_revoked: int = 0


def change_member_role(*, actor: Membership, membership_id: int, role: str) -> MemberChange:
    """Change a member's role within what the actor may assign, keeping at least one Owner."""
    policy.authorize(actor, "member.change_role", event="member.role_changed")
    new_role = Role(role)
    target = _member_in_team(actor.team, membership_id)
    old_role = Role(target.role)
    policy.authorize(
        actor,
        "member.change_role",
        target,
        role=new_role,
        event="member.role_changed",
        target_type="membership",
        target_id=target.pk,
        target_label=target.user.display_name,
        details={"role_change": [old_role.value, new_role.value]},
    )
    if old_role == new_role:
        return MemberChange(target)
    try:
        with transaction.atomic():
            if _lock_membership_changes(actor) != actor.role:
                raise _your_role_changed()
            if not _lock_unchanged(target):
                raise _changed_meanwhile()
            if policy.leaves_no_owner(old_role, new_role, lambda: _owner_count_locked(actor.team)):
                raise LastOwnerError(
                    f"{target.user.display_name} is the only Owner. Make someone else an Owner "
                    "first, then change this role."
                )
            target.role = new_role
            target.save(update_fields=["role"])
            revoked = revoke_with_maker(actor, target, new_role)
            _record_member(
                actor,
                "member.role_changed",
                target=target,
                details={
                    "username": target.user.username,
                    "role": [old_role.value, new_role.value],
                    "invitations_revoked": revoked,
                },
            )
    except TeamError as error:
        target.role = old_role
        _record_failure(actor, "member.role_changed", error, target=target)
        raise
    return MemberChange(target, revoked)


def remove_member(*, actor: Membership, membership_id: int) -> MemberChange:
    """Remove someone else from the team (to remove yourself, leave)."""
    policy.authorize(actor, "member.remove", event="member.removed")
    target = _member_in_team(actor.team, membership_id)
    if target.pk == actor.pk:
        raise TeamError("To remove yourself from the team, use “Leave team”.")
    policy.authorize(
        actor,
        "member.remove",
        target,
        event="member.removed",
        target_type="membership",
        target_id=target.pk,
        target_label=target.user.display_name,
    )
    target_pk = target.pk
    try:
        with transaction.atomic():
            if _lock_membership_changes(actor) != actor.role:
                raise _your_role_changed()
            if not _lock_unchanged(target):
                raise _changed_meanwhile()
            if policy.leaves_no_owner(target.role, None, lambda: _owner_count_locked(actor.team)):
                raise LastOwnerError(
                    f"{target.user.display_name} is the only Owner and cannot be removed."
                )
            revoked = revoke_with_maker(actor, target, None)
            target.delete()
            target.pk = target_pk
            _depart(target, Departure.Reason.REMOVED)
            _record_member(
                actor,
                "member.removed",
                target=target,
                details={
                    "username": target.user.username,
                    "role": target.role,
                    "invitations_revoked": revoked,
                },
            )
    except TeamError as error:
        target.pk = target_pk
        _record_failure(actor, "member.removed", error, target=target)
        raise
    return MemberChange(target, revoked)


def leave_team(*, actor: Membership) -> MemberChange:
    """Leave the team yourself; the last Owner must hand ownership over first."""
    pk = actor.pk
    try:
        with transaction.atomic():
            role = _lock_membership_changes(actor)
            if role is None:
                return MemberChange(actor)  # removed meanwhile: already out, nothing to record
            if policy.leaves_no_owner(role, None, lambda: _owner_count_locked(actor.team)):
                raise LastOwnerError(
                    "You are the only Owner of this team. Make another member an Owner first, "
                    "then you can leave."
                )
            revoked = revoke_with_maker(actor, actor, None)
            Membership.objects.filter(pk=pk).delete()
            _depart(actor, Departure.Reason.LEFT)
            _record_member(
                actor,
                "member.left",
                target=actor,
                details={
                    "username": actor.user.username,
                    "role": role,
                    "invitations_revoked": revoked,
                },
            )
    except TeamError as error:
        _record_failure(actor, "member.left", error, target=actor)
        raise
    return MemberChange(actor, revoked)


def unlock_member(*, actor: Membership, membership_id: int) -> Membership:
    """Lift a sign-in lockout of a member (too many wrong passwords or two-factor codes) before
    it expires. The counters live in the shared cache (accounts.limits); the audit event is
    written first, so a failed write unlocks nothing, and a failed clear rolls the event back."""

    policy.authorize(actor, "member.unlock", event="member.unlocked")
    target = _member_in_team(actor.team, membership_id)
    policy.authorize(
        actor,
        "member.unlock",
        target,
        event="member.unlocked",
        target_type="membership",
        target_id=target.pk,
        target_label=target.user.display_name,
    )
    username = target.user.username
    with transaction.atomic():
        cleared = sign_in_limits.recent_failures(target.user)
        _record_member(
            actor,
            "member.unlocked",
            target=target,
            details={"username": username, "attempts_cleared": cleared},
        )
        sign_in_limits.unlock(target.user)
    return target
