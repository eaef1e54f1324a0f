"""Team, membership and invitation operations: every write and its audit event live here.

Who may do what is teams.policy's answer; these functions ask it again (a view is not the only
caller) together with the rules that need the database under a lock (the last Owner, a role
changed meanwhile). A success and its audit event commit in one transaction; a refusal or
failure is recorded after the rollback, so that it stays. Errors are `DomainError`s whose
message is for the user.

Power granted through a person ends with that person's power: removing a member revokes the
pending invitations they made; demoting one revokes those above what their new role may invite.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from audit.models import Outcome
from audit.services import record
from convai_admin.errors import DomainError, NotFound

from . import policy
from .models import Invitation, Membership, Role, Team

SLUG_MAX_LENGTH = 50


# --- Domain errors ------------------------------------------------------------------------------


class TeamError(DomainError):
    """A rule of teams or invitations refused the operation."""


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
    """Create a team with the creator as its Owner (any signed-in person may)."""
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


def invitations_revoked_with(member: Membership, new_role: str | None) -> list[Invitation]:
    """The pending invitations `member` made that their new role (None: removed) could not
    make: those stop working when their power ends."""
    made = list(
        Invitation.objects.filter(
            team_id=member.team_id,
            created_by_id=member.user_id,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
    )
    if new_role is None:
        return made
    reduced = Membership(team_id=member.team_id, user_id=member.user_id, role=new_role)
    return [
        invitation
        for invitation in made
        if not policy.may(reduced, "invitation.create", role=invitation.role)
    ]


def _revoke_with_maker(actor: Membership, member: Membership, new_role: str | None) -> int:
    """Inside the member change's transaction: revoke what the member's power no longer
    covers, each revocation audited with why."""
    invitations = invitations_revoked_with(member, new_role)
    now = timezone.now()
    for invitation in invitations:
        invitation.revoked_at = now
        invitation.save(update_fields=["revoked_at"])
        _record_invitation(
            "invitation.revoked",
            invitation,
            actor=actor.user,
            team=actor.team,
            details={
                "role": invitation.role,
                "email": invitation.email,
                "reason": "maker removed" if new_role is None else "maker demoted",
                "maker": member.user.username,
            },
        )
    return len(invitations)


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
            revoked = _revoke_with_maker(actor, target, new_role)
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
            revoked = _revoke_with_maker(actor, target, None)
            target.delete()
            target.pk = target_pk
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
            revoked = _revoke_with_maker(actor, actor, None)
            Membership.objects.filter(pk=pk).delete()
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
    """Lift a sign-in lockout of a member (too many wrong passwords) before it expires."""
    from axes.utils import reset as axes_reset

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
    with transaction.atomic():
        cleared = axes_reset(username=target.user.username)
        _record_member(
            actor,
            "member.unlocked",
            target=target,
            details={"username": target.user.username, "attempts_cleared": cleared},
        )
    return target


# --- Invitations ---------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedInvitation:
    """The invitation and its raw token: the token exists only here, shown once, never stored."""

    invitation: Invitation
    token: str


def _record_invitation(
    action: str,
    invitation: Invitation,
    *,
    actor: User | None,
    team: Team,
    details: dict[str, object],
    outcome: str = Outcome.SUCCESS,
) -> None:
    """An audit event about one invitation, labelled by its email or its role."""
    record(
        action,
        actor=actor,
        team=team,
        target_type="invitation",
        target_id=invitation.pk,
        target_label=invitation.email or f"{Role(invitation.role).label} invitation",
        outcome=outcome,
        details=details,
    )


def create_invitation(*, actor: Membership, role: str, email: str = "") -> CreatedInvitation:
    """A single-use link to join as `role`, valid for settings.INVITATION_VALID_DAYS days."""
    role = Role(role)
    policy.authorize(
        actor,
        "invitation.create",
        role=role,
        event="invitation.created",
        target_type="invitation",
        details={"invited_role": role.value},
    )
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=actor.team,
            email=email.strip(),
            role=role,
            token_hash=hash_token(token),
            created_by=actor.user,
            created_at=now,
            expires_at=now + timedelta(days=settings.INVITATION_VALID_DAYS),
        )
        _record_invitation(
            "invitation.created",
            invitation,
            actor=actor.user,
            team=actor.team,
            details={
                "role": role.value,
                "email": invitation.email,
                "expires_at": invitation.expires_at.isoformat(),
            },
        )
    return CreatedInvitation(invitation=invitation, token=token)


def revoke_invitation(*, actor: Membership, invitation_id: int) -> Invitation:
    """Admins revoke any pending invitation of their team (revoking only takes access away)."""
    policy.authorize(actor, "invitation.revoke", event="invitation.revoked")
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().filter(team=actor.team, pk=invitation_id).first()
        )
        if invitation is None:
            raise InvitationNotFound("That invitation does not exist in this team.")
        if not invitation.is_pending:
            raise InvitationUnusable(
                "That invitation was already used, revoked or has expired; nothing to revoke.",
                reason=invitation_state(invitation),
            )
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        _record_invitation(
            "invitation.revoked",
            invitation,
            actor=actor.user,
            team=actor.team,
            details={"role": invitation.role, "email": invitation.email},
        )
    return invitation


def invitation_state(invitation: Invitation) -> str:
    """pending / accepted / revoked / expired — revoked and accepted win over expiry."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= timezone.now():
        return "expired"
    return "pending"


_UNUSABLE_MESSAGES = {
    "accepted": "This invitation link has already been used. Each link works once.",
    "revoked": "This invitation was withdrawn by an admin of the team.",
    "expired": "This invitation link has expired.",
}


def find_invitation(token: str, *, visitor: User | None = None) -> Invitation:
    """The usable invitation for a token from a link, or a domain error saying why not.

    Presenting a link that was used, revoked or has expired is recorded (`invitation.refused`):
    an admin should see someone trying an old link."""
    invitation = (
        Invitation.objects.select_related("team", "created_by")
        .filter(token_hash=hash_token(token))
        .first()
    )
    if invitation is None:
        raise InvitationNotFound()
    state = invitation_state(invitation)
    if state != "pending":
        _record_invitation(
            "invitation.refused",
            invitation,
            actor=visitor,
            team=invitation.team,
            outcome=Outcome.DENIED,
            details={"role": invitation.role, "reason": state},
        )
        raise InvitationUnusable(_UNUSABLE_MESSAGES[state], reason=state)
    return invitation


def _consume(invitation_pk: int, user: User) -> Membership:
    """Inside a transaction: lock the invitation, re-check it, and create the membership."""
    invitation = Invitation.objects.select_for_update().select_related("team").get(pk=invitation_pk)
    state = invitation_state(invitation)
    if state != "pending":
        raise InvitationUnusable(_UNUSABLE_MESSAGES[state], reason=state)
    already = AlreadyMember(
        f"You are already a member of {invitation.team.name}. The invitation was not used, "
        "so it still works for the person it was meant for."
    )
    if Membership.objects.filter(team=invitation.team, user=user).exists():
        raise already
    try:
        with transaction.atomic():  # a savepoint: a concurrent second invitation may win
            membership = Membership.objects.create(
                team=invitation.team, user=user, role=invitation.role
            )
    except IntegrityError:
        raise already from None
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _record_accept(
    invitation: Invitation,
    user: User,
    *,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, object] | None = None,
) -> None:
    _record_invitation(
        "invitation.accepted",
        invitation,
        actor=user,
        team=invitation.team,
        outcome=outcome,
        details={"role": invitation.role, "username": user.username, **(details or {})},
    )


def accept_invitation(*, actor: User, token: str) -> Membership:
    """Join the invitation's team with its role; the link is used up."""
    invitation = find_invitation(token, visitor=actor)
    try:
        with transaction.atomic():
            membership = _consume(invitation.pk, actor)
            _record_accept(invitation, actor)
    except AlreadyMember:
        _record_accept(invitation, actor, outcome=Outcome.FAILURE, details={"reason": "member"})
        raise
    except InvitationUnusable as error:
        _record_accept(invitation, actor, outcome=Outcome.FAILURE, details={"reason": error.reason})
        raise
    return membership


@sensitive_variables()  # holds the new account's password
def accept_invitation_with_new_account(
    *,
    token: str,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Membership:
    """Create an account through an invitation (the only way to sign up) and join the team.

    The account is only created if the invitation is still usable: both happen together."""
    invitation = find_invitation(token)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username,
                password=password,
                first_name=first_name,
                last_name=last_name,
                email=email,
            )
            membership = _consume(invitation.pk, user)
            record(
                "user.created",
                actor=user,
                team=invitation.team,
                target_type="user",
                target_id=user.pk,
                target_label=user.display_name,
                details={"username": user.username, "via": "invitation"},
            )
            _record_accept(invitation, user)
    except IntegrityError as error:
        raise UsernameTaken("That username was just taken. Please choose another.") from error
    return membership
