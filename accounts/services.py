"""Team, membership and invitation operations: every write and its audit event live here.

Views are decorated with `team_view(min_role)`; these functions check the role again (defence in
depth) together with the finer rules a decorator cannot know (who may promote whom, the last
Owner), record the outcome, and raise `TeamError` subclasses that views turn into messages.

Who may do what:
- Any signed-in person may create a team and becomes its Owner.
- Admins manage Editors and Viewers: change their role between Editor and Viewer, remove them,
  invite people as Editor or Viewer, revoke any pending invitation of the team.
- Owners also manage Admins and Owners (promote to / demote from Admin and Owner), rename the
  team, and invite Admins. Nobody is *invited* as Owner: ownership is only granted by promoting
  someone who already joined, so a forwarded link can never hand over the team.
- A team always keeps at least one Owner: the last Owner cannot leave, be demoted or removed.
- Anyone may leave a team (other than its last Owner).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from audit.models import Outcome
from audit.services import record

from .models import ROLE_RANK, Invitation, Membership, Role, Team, User
from .permissions import RoleRequired

SLUG_MAX_LENGTH = 50


# --- Domain errors ------------------------------------------------------------------------------


class TeamError(Exception):
    """A rule of teams or invitations refused the operation; the message is for the user."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotAllowed(TeamError):
    """The member's role does not allow this operation on this target."""


class LastOwnerError(TeamError):
    """The operation would leave the team without an Owner."""


class MemberNotFound(TeamError):
    """No such member in this team (another team's member does not exist for you)."""


class InvitationNotFound(TeamError):
    """No invitation matches (wrong token, or another team's invitation)."""


class InvitationUnusable(TeamError):
    """The invitation exists but can no longer be used: expired, revoked or already used."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class AlreadyMember(TeamError):
    """The person is already in the team; the invitation is left unused for someone else."""


class UsernameTaken(TeamError):
    """The username was taken between validation and creation."""


# --- Rules ---------------------------------------------------------------------------------------


def _rank(role: str) -> int:
    return ROLE_RANK[Role(role)]


def assignable_roles(actor: Membership) -> list[Role]:
    """Roles the actor may give to a member they manage (highest first)."""
    if actor.role == Role.OWNER:
        return [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]
    if actor.role == Role.ADMIN:
        return [Role.EDITOR, Role.VIEWER]
    return []


def invitable_roles(actor: Membership) -> list[Role]:
    """Roles the actor may invite someone as. Never Owner (see the module docstring)."""
    return [role for role in assignable_roles(actor) if role != Role.OWNER]


def can_manage(actor: Membership, target: Membership) -> bool:
    """Owners manage everyone; Admins manage Editors and Viewers; nobody manages themselves
    through these forms (they leave, or ask another Owner)."""
    if actor.pk == target.pk:
        return False
    if actor.role == Role.OWNER:
        return True
    if actor.role == Role.ADMIN:
        return _rank(target.role) < _rank(Role.ADMIN)
    return False


def can_change_own_role(actor: Membership) -> bool:
    """An Owner may step down to a smaller role while another Owner remains."""
    return actor.role == Role.OWNER


def _deny(
    actor: Membership,
    action: str,
    message: str,
    *,
    request: HttpRequest | None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    details: dict[str, object] | None = None,
) -> NotAllowed:
    record(
        action,
        actor=actor.user,
        team=actor.team,
        request=request,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        outcome=Outcome.DENIED,
        details={"role": actor.role, **(details or {})},
    )
    return NotAllowed(message)


def _require(actor: Membership, minimum: str, action: str, *, request: HttpRequest | None) -> None:
    """The service-level role check (the views' decorator checked already): record, refuse."""
    if not actor.has_role(minimum):
        record(
            action,
            actor=actor.user,
            team=actor.team,
            request=request,
            outcome=Outcome.DENIED,
            details={"role": actor.role, "required": Role(minimum).value},
        )
        raise RoleRequired(minimum)


def _owner_count_locked(team: Team) -> int:
    """Owners of the team, with their rows locked so two demotions cannot race past the rule."""
    return len(
        list(
            Membership.objects.select_for_update()
            .filter(team=team, role=Role.OWNER)
            .values_list("pk", flat=True)
        )
    )


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


def create_team(user: User, name: str, *, request: HttpRequest | None = None) -> Team:
    """Create a team with the creator as its Owner."""
    name = name.strip()
    for _attempt in range(5):
        try:
            with transaction.atomic():
                team = Team.objects.create(name=name, slug=unique_team_slug(name), created_by=user)
                Membership.objects.create(team=team, user=user, role=Role.OWNER)
            break
        except IntegrityError:  # a concurrent create took the slug; pick the next one
            continue
    else:  # pragma: no cover - five collisions in a row
        raise TeamError("Could not create the team right now. Please try again.")
    record(
        "team.created",
        actor=user,
        team=team,
        request=request,
        target_type="team",
        target_id=team.pk,
        target_label=team.name,
        details={"name": team.name, "slug": team.slug},
    )
    return team


def rename_team(actor: Membership, name: str, *, request: HttpRequest | None = None) -> Team:
    """Owners rename the team; the slug (and so every bookmarked link) stays the same."""
    team = actor.team
    _require(actor, Role.OWNER, "team.renamed", request=request)
    old = team.name
    new = name.strip()
    if new == old:
        return team
    team.name = new
    team.save(update_fields=["name"])
    record(
        "team.renamed",
        actor=actor.user,
        team=team,
        request=request,
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
        raise MemberNotFound("That person is not a member of this team (any more).")
    return member


def _changed_meanwhile() -> TeamError:
    return TeamError(
        "That member's role changed or they left while you were looking. Reload the page and "
        "try again."
    )


def _your_role_changed() -> TeamError:
    return TeamError(
        "Your own role in this team changed while you were looking. Reload the page and try again."
    )


def _lock_membership_changes(actor: Membership) -> str | None:
    """Inside a transaction: lock the team row, so the team's membership changes run one at a
    time (none can race past the last-Owner rule, nor deadlock on another's member rows), and
    return the actor's role as it is now (None once they are gone): the membership read at the
    start of the request may be stale — they may have been demoted or removed meanwhile."""
    Team.objects.select_for_update().filter(pk=actor.team_id).values_list("pk").first()
    return Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()


def _record_failure(
    actor: Membership,
    action: str,
    error: TeamError,
    *,
    request: HttpRequest | None,
    target: Membership,
) -> None:
    """A refusal found under the lock (last Owner, changed meanwhile), recorded after the
    transaction rolled back so that it stays in the log."""
    _record_member(
        actor,
        action,
        request=request,
        target_id=target.pk,
        label=target.user.display_name,
        details={"reason": type(error).__name__, "role": target.role},
        outcome=Outcome.FAILURE,
    )


def _record_member(
    actor: Membership,
    action: str,
    *,
    request: HttpRequest | None,
    target_id: int | None,
    label: str,
    details: dict[str, object],
    outcome: str = Outcome.SUCCESS,
) -> None:
    """An audit event about one membership of the actor's team."""
    record(
        action,
        actor=actor.user,
        team=actor.team,
        request=request,
        target_type="membership",
        target_id=target_id,
        target_label=label,
        outcome=outcome,
        details=details,
    )


def _lock_unchanged(target: Membership) -> bool:
    """Lock the member's row; False when it is gone or its role changed since it was read."""
    return Membership.objects.select_for_update().filter(pk=target.pk, role=target.role).exists()


def change_member_role(
    actor: Membership,
    membership_id: int,
    new_role: str,
    *,
    request: HttpRequest | None = None,
) -> Membership:
    """Change a member's role within what the actor may assign, keeping at least one Owner."""
    _require(actor, Role.ADMIN, "member.role_changed", request=request)
    new_role = Role(new_role)
    target = _member_in_team(actor.team, membership_id)
    label = target.user.display_name
    old_role = Role(target.role)
    own = target.pk == actor.pk
    allowed = (own and can_change_own_role(actor)) or can_manage(actor, target)
    if not allowed or new_role not in assignable_roles(actor):
        # Recorded outside any transaction, so the refusal stays in the log.
        raise _deny(
            actor,
            "member.role_changed",
            "Only an Owner can change the role of Admins and Owners, or make someone an "
            "Admin or Owner. Ask an Owner of this team.",
            request=request,
            target_type="membership",
            target_id=target.pk,
            target_label=label,
            details={"role_change": [old_role.value, new_role.value]},
        )
    if old_role == new_role:
        return target
    try:
        with transaction.atomic():
            if _lock_membership_changes(actor) != actor.role:
                raise _your_role_changed()
            if not _lock_unchanged(target):
                raise _changed_meanwhile()
            if old_role == Role.OWNER and _owner_count_locked(actor.team) <= 1:
                raise LastOwnerError(
                    f"{label} is the only Owner. Make someone else an Owner first, then change "
                    "this role."
                )
            target.role = new_role
            target.save(update_fields=["role"])
    except TeamError as error:
        _record_failure(actor, "member.role_changed", error, request=request, target=target)
        raise
    _record_member(
        actor,
        "member.role_changed",
        request=request,
        target_id=target.pk,
        label=label,
        details={"username": target.user.username, "role": [old_role.value, new_role.value]},
    )
    return target


def remove_member(
    actor: Membership, membership_id: int, *, request: HttpRequest | None = None
) -> Membership:
    """Remove someone else from the team (to remove yourself, leave)."""
    _require(actor, Role.ADMIN, "member.removed", request=request)
    target = _member_in_team(actor.team, membership_id)
    label = target.user.display_name
    if target.pk == actor.pk:
        raise TeamError("To remove yourself from the team, use “Leave team”.")
    if not can_manage(actor, target):
        raise _deny(
            actor,
            "member.removed",
            "Only an Owner can remove Admins and Owners. Ask an Owner of this team.",
            request=request,
            target_type="membership",
            target_id=target.pk,
            target_label=label,
        )
    try:
        with transaction.atomic():
            if _lock_membership_changes(actor) != actor.role:
                raise _your_role_changed()
            if not _lock_unchanged(target):
                raise _changed_meanwhile()
            if target.role == Role.OWNER and _owner_count_locked(actor.team) <= 1:
                raise LastOwnerError(f"{label} is the only Owner and cannot be removed.")
            target_pk, role, username = target.pk, target.role, target.user.username
            target.delete()
    except TeamError as error:
        _record_failure(actor, "member.removed", error, request=request, target=target)
        raise
    target.pk = target_pk
    _record_member(
        actor,
        "member.removed",
        request=request,
        target_id=target_pk,
        label=label,
        details={"username": username, "role": role},
    )
    return target


def leave_team(actor: Membership, *, request: HttpRequest | None = None) -> None:
    """Leave the team yourself; the last Owner must hand ownership over first."""
    pk = actor.pk
    try:
        with transaction.atomic():
            role = _lock_membership_changes(actor)
            if role is None:
                return  # removed meanwhile: already out, and nothing happened to record
            if role == Role.OWNER and _owner_count_locked(actor.team) <= 1:
                raise LastOwnerError(
                    "You are the only Owner of this team. Make another member an Owner first, "
                    "then you can leave."
                )
            Membership.objects.filter(pk=pk).delete()
    except TeamError as error:
        _record_failure(actor, "member.left", error, request=request, target=actor)
        raise
    _record_member(
        actor,
        "member.left",
        request=request,
        target_id=pk,
        label=actor.user.display_name,
        details={"username": actor.user.username, "role": role},
    )


# --- Invitations ---------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedInvitation:
    """The invitation and its raw token: the token exists only here, shown once, never stored."""

    invitation: Invitation
    token: str


def create_invitation(
    actor: Membership,
    role: str,
    email: str = "",
    *,
    request: HttpRequest | None = None,
) -> CreatedInvitation:
    """A single-use link to join as `role`, valid for settings.INVITATION_VALID_DAYS days.

    Admins invite Editors and Viewers; Owners also invite Admins; nobody invites Owners."""
    _require(actor, Role.ADMIN, "invitation.created", request=request)
    role = Role(role)
    if role not in invitable_roles(actor):
        raise _deny(
            actor,
            "invitation.created",
            "Only an Owner can invite Admins, and Owners are made by promoting a member. "
            "Invite them with a smaller role, or ask an Owner.",
            request=request,
            target_type="invitation",
            details={"invited_role": role.value},
        )
    token = secrets.token_urlsafe(32)
    now = timezone.now()
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
        request=request,
        details={
            "role": role.value,
            "email": invitation.email,
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    return CreatedInvitation(invitation=invitation, token=token)


def revoke_invitation(
    actor: Membership, invitation_id: int, *, request: HttpRequest | None = None
) -> Invitation:
    """Admins revoke any pending invitation of their team (revoking only takes access away)."""
    _require(actor, Role.ADMIN, "invitation.revoked", request=request)
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
        request=request,
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


def find_invitation(token: str) -> Invitation:
    """The usable invitation for a token from a link, or a domain error saying why not."""
    invitation = (
        Invitation.objects.select_related("team", "created_by")
        .filter(token_hash=hash_token(token))
        .first()
    )
    if invitation is None:
        raise InvitationNotFound(
            "This invitation link is not valid. Check that it was copied whole."
        )
    state = invitation_state(invitation)
    if state != "pending":
        raise InvitationUnusable(_UNUSABLE_MESSAGES[state], reason=state)
    return invitation


def _consume(invitation_pk: int, user: User, request: HttpRequest | None) -> Membership:
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


def _record_invitation(
    action: str,
    invitation: Invitation,
    *,
    actor: User,
    team: Team,
    request: HttpRequest | None,
    details: dict[str, object],
    outcome: str = Outcome.SUCCESS,
) -> None:
    """An audit event about one invitation, labelled by its email or its role."""
    record(
        action,
        actor=actor,
        team=team,
        request=request,
        target_type="invitation",
        target_id=invitation.pk,
        target_label=invitation.email or f"{Role(invitation.role).label} invitation",
        outcome=outcome,
        details=details,
    )


def _record_accept(
    invitation: Invitation,
    user: User,
    request: HttpRequest | None,
    *,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, object] | None = None,
) -> None:
    _record_invitation(
        "invitation.accepted",
        invitation,
        actor=user,
        team=invitation.team,
        request=request,
        outcome=outcome,
        details={"role": invitation.role, "username": user.username, **(details or {})},
    )


def accept_invitation(token: str, user: User, *, request: HttpRequest | None = None) -> Membership:
    """Join the invitation's team with its role; the link is used up."""
    invitation = find_invitation(token)
    try:
        with transaction.atomic():
            membership = _consume(invitation.pk, user, request)
    except AlreadyMember:
        _record_accept(
            invitation, user, request, outcome=Outcome.FAILURE, details={"reason": "member"}
        )
        raise
    except InvitationUnusable as error:
        _record_accept(
            invitation, user, request, outcome=Outcome.FAILURE, details={"reason": error.reason}
        )
        raise
    _record_accept(invitation, user, request)
    return membership


@sensitive_variables()  # holds the new account's password
def accept_invitation_with_new_account(
    token: str,
    *,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    request: HttpRequest | None = None,
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
            membership = _consume(invitation.pk, user, request)
    except IntegrityError as error:
        raise UsernameTaken("That username was just taken. Please choose another.") from error
    record(
        "user.created",
        actor=user,
        team=invitation.team,
        request=request,
        target_type="user",
        target_id=user.pk,
        target_label=user.display_name,
        details={"username": user.username, "via": "invitation"},
    )
    _record_accept(invitation, user, request)
    return membership
