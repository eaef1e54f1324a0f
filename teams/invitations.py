"""Invitations: single-use links to join a team, and the power that ends with their maker's.

A link's raw token exists only in the response that creates it (its hash is stored). Power
granted through a person ends with that person's power: removing a member revokes the pending
invitations they made; demoting one revokes those above what their new role may invite
(`revoke_with_maker`, called inside teams.services' member changes).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from audit.models import Outcome
from audit.services import record

from . import policy
from .errors import AlreadyMember, InvitationNotFound, InvitationUnusable, UsernameTaken
from .models import Departure, Invitation, Membership, Role, Team


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


@dataclass(frozen=True)
class Emailed:
    sent: bool
    problem: str = ""  # why not, for the inviter (never the link)


mail_log = logging.getLogger("convai_admin.mail")


def email_invitation(*, actor: Membership, invitation: Invitation, link: str) -> Emailed:
    """Send the link to the invitation's email address. A failure loses nothing (the
    invitation exists and the page shows the link to copy); either way it is audited, without
    the link or its token."""
    if not invitation.email or not settings.EMAIL_ENABLED:
        return Emailed(sent=False)
    team = actor.team
    body = render_to_string(
        "teams/email/invitation.txt",
        {
            "inviter": actor.user.display_name,
            "team": team.name,
            "role": Role(invitation.role).label,
            "link": link,
            "expires": invitation.expires_at,
        },
    )
    try:
        send_mail(
            f"{actor.user.display_name} invited you to {team.name} on Convai Admin",
            body,
            None,
            [invitation.email],
        )
    except (smtplib.SMTPException, OSError) as error:
        problem = _mail_problem(error)
        mail_log.warning("Invitation %s: mail not sent (%s)", invitation.pk, problem)
        _record_invitation(
            "invitation.emailed",
            invitation,
            actor=actor.user,
            team=team,
            outcome=Outcome.FAILURE,
            details={"email": invitation.email, "problem": problem},
        )
        return Emailed(sent=False, problem=problem)
    _record_invitation(
        "invitation.emailed",
        invitation,
        actor=actor.user,
        team=team,
        details={"email": invitation.email},
    )
    return Emailed(sent=True)


def _mail_problem(error: Exception) -> str:
    """What went wrong, in words for the inviter and the log: the server's SMTP code, or the
    kind of failure (never the message body, which is not ours to repeat)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the mail server refused the address"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the mail server answered {error.smtp_code}"
    if isinstance(error, smtplib.SMTPException):
        return f"the mail server failed ({type(error).__name__})"
    return "the mail server could not be reached"


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
    "archived": "This team is archived, so nobody can join it now. Its invitation links work "
    "again if an Owner unarchives it.",
    "accepted": "This invitation link has already been used. Each link works once.",
    "revoked": "This invitation was withdrawn by an admin of the team.",
    "expired": "This invitation link has expired.",
}


def _usable_state(invitation: Invitation) -> str:
    """invitation_state, and "archived" for a pending invitation of an archived team."""
    state = invitation_state(invitation)
    if state == "pending" and invitation.team.archived_at is not None:
        return "archived"
    return state


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
    state = _usable_state(invitation)
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
    state = _usable_state(invitation)
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
    Departure.objects.filter(team=invitation.team, user=user).delete()  # a member again
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
    reduced = Membership(team=member.team, user_id=member.user_id, role=new_role)
    return [
        invitation
        for invitation in made
        if not policy.may(reduced, "invitation.create", role=invitation.role)
    ]


def revoke_with_maker(actor: Membership, member: Membership, new_role: str | None) -> int:
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
