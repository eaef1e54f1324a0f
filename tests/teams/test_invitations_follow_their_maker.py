"""Security finding 1: an invitation link is power lent by the member who made it, and ends
with that member's power. Removing a member (or their leaving) revokes every pending invitation
they made; demoting one revokes those their new role could not make. Each revocation, and each
later attempt to use a dead link, is in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from teams import errors, invitations, services
from teams.models import Invitation, Membership, Role, Team
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "violet-harbor-lantern-42"


def accept_url(token: str) -> str:
    return reverse("teams:invitation-accept", kwargs={"token": token})


def invite(maker: Membership, role: Role) -> invitations.CreatedInvitation:
    return invitations.create_invitation(actor=maker, role=role)


def pending(invitation: Invitation) -> bool:
    return Invitation.objects.get(pk=invitation.pk).is_pending


def revocations() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="invitation.revoked").order_by("seq"))


def signup(client: Client, token: str, username: str = "returner") -> None:
    client.post(
        accept_url(token),
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )


@pytest.fixture
def owner(team: Team) -> Membership:
    return MembershipFactory.create(team=team, role=Role.OWNER)


# --- Removal --------------------------------------------------------------------------------------


def test_a_removed_admins_link_no_longer_works(client: Client, team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    link = invite(admin, Role.EDITOR)

    client.force_login(owner.user)
    confirm = client.get(reverse("teams:member-remove", args=[team.slug, admin.pk]))
    assert "The 1 pending invitation they created will stop working." in confirm.content.decode()
    done = client.post(reverse("teams:member-remove", args=[team.slug, admin.pk]), follow=True)
    assert "The 1 pending invitation they made no longer works." in done.content.decode()
    assert not pending(link.invitation)

    # The removed admin tries to come back through their own link.
    client.force_login(admin.user)
    page = client.get(accept_url(link.token), follow=True)
    assert page.status_code == 410
    assert "This invitation was revoked" in page.content.decode()
    assert client.post(accept_url(link.token)).status_code == 410
    assert not Membership.objects.filter(team=team, user=admin.user).exists()
    # Nor does a new account get in through it.
    client.logout()
    signup(client, link.token)
    assert not Membership.objects.filter(team=team, user__username="returner").exists()

    [revoked] = revocations()
    assert (revoked.outcome, revoked.actor, revoked.team) == (Outcome.SUCCESS, owner.user, team)
    assert revoked.target_id == str(link.invitation.pk)
    assert revoked.details["reason"] == "maker removed"
    assert revoked.details["maker"] == admin.user.username
    removed = AuditEvent.objects.get(action="member.removed")
    assert removed.details["invitations_revoked"] == 1
    # The revocation is recorded before the removal that caused it, in the same chain.
    assert revoked.seq < removed.seq


def test_an_owners_admin_link_dies_with_the_owner(client: Client, team: Team, owner) -> None:
    """The case from the review: an Owner's Admin-level link let a stranger join as Admin
    after the Owner had been removed."""
    other_owner = MembershipFactory.create(team=team, role=Role.OWNER)
    link = invite(other_owner, Role.ADMIN)
    services.remove_member(actor=owner, membership_id=other_owner.pk)
    signup(client, link.token, username="stranger")
    assert not Membership.objects.filter(user__username="stranger").exists()
    assert Membership.objects.filter(team=team).count() == 1


def test_other_makers_invitations_survive_a_removal(team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    theirs = invite(admin, Role.VIEWER)
    mine = invite(owner, Role.VIEWER)
    change = services.remove_member(actor=owner, membership_id=admin.pk)
    assert change.invitations_revoked == 1
    assert not pending(theirs.invitation)
    assert pending(mine.invitation)


def test_used_and_already_revoked_invitations_are_left_as_they_are(team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    used = invite(admin, Role.VIEWER)
    invitations.accept_invitation(actor=UserFactory.create(), token=used.token)
    withdrawn = invite(admin, Role.VIEWER)
    invitations.revoke_invitation(actor=owner, invitation_id=withdrawn.invitation.pk)
    before = Invitation.objects.get(pk=withdrawn.invitation.pk).revoked_at
    change = services.remove_member(actor=owner, membership_id=admin.pk)
    assert change.invitations_revoked == 0
    assert Invitation.objects.get(pk=withdrawn.invitation.pk).revoked_at == before
    assert Invitation.objects.get(pk=used.invitation.pk).revoked_at is None
    assert [e.details.get("reason") for e in revocations()] == [None]  # the manual one only


# --- Demotion -------------------------------------------------------------------------------------


def test_an_owner_demoted_to_admin_loses_only_the_admin_level_links(
    client: Client, team: Team, owner
) -> None:
    other_owner = MembershipFactory.create(team=team, role=Role.OWNER)
    admin_link = invite(other_owner, Role.ADMIN)
    editor_link = invite(other_owner, Role.EDITOR)

    client.force_login(owner.user)
    url = reverse("teams:member-role", args=[team.slug, other_owner.pk])
    response = client.post(url, {f"m{other_owner.pk}-role": "admin"}, follow=True)
    assert (
        "1 pending invitation they made above their new role stopped working"
        in response.content.decode()
    )
    assert not pending(admin_link.invitation)
    assert pending(editor_link.invitation)
    [revoked] = revocations()
    assert revoked.target_id == str(admin_link.invitation.pk)
    assert revoked.details["reason"] == "maker demoted"
    changed = AuditEvent.objects.get(action="member.role_changed")
    assert changed.details["invitations_revoked"] == 1
    # The surviving link still works.
    invitations.accept_invitation(actor=UserFactory.create(), token=editor_link.token)


def test_an_admin_demoted_to_editor_loses_every_link(team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    links = [invite(admin, Role.EDITOR), invite(admin, Role.VIEWER)]
    change = services.change_member_role(actor=owner, membership_id=admin.pk, role=Role.EDITOR)
    assert change.invitations_revoked == 2
    assert not any(pending(link.invitation) for link in links)
    assert {e.details["reason"] for e in revocations()} == {"maker demoted"}


def test_a_promotion_revokes_nothing(team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    link = invite(admin, Role.EDITOR)
    change = services.change_member_role(actor=owner, membership_id=admin.pk, role=Role.OWNER)
    assert change.invitations_revoked == 0
    assert pending(link.invitation)
    assert revocations() == []


def test_a_refused_demotion_revokes_nothing(team: Team, owner) -> None:
    """The last Owner cannot step down: their links must survive the refusal."""
    link = invite(owner, Role.ADMIN)
    with pytest.raises(errors.LastOwnerError):
        services.change_member_role(actor=owner, membership_id=owner.pk, role=Role.ADMIN)
    assert pending(link.invitation)
    assert revocations() == []


# --- Leaving --------------------------------------------------------------------------------------


def test_leaving_revokes_every_link_one_made(client: Client, team: Team, owner) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    links = [invite(admin, Role.EDITOR), invite(admin, Role.VIEWER)]
    client.force_login(admin.user)
    confirm = client.get(reverse("teams:leave", args=[team.slug]))
    assert "The 2 pending invitations you created will stop working." in confirm.content.decode()
    client.post(reverse("teams:leave", args=[team.slug]))
    assert not Membership.objects.filter(pk=admin.pk).exists()
    assert not any(pending(link.invitation) for link in links)
    assert [(e.actor, e.details["reason"]) for e in revocations()] == [
        (admin.user, "maker removed"),
        (admin.user, "maker removed"),
    ]
    assert AuditEvent.objects.get(action="member.left").details["invitations_revoked"] == 2


def test_a_confirmation_without_links_does_not_mention_them(
    client: Client, team: Team, owner
) -> None:
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(owner.user)
    html = client.get(reverse("teams:member-remove", args=[team.slug, editor.pk])).content
    assert b"pending invitation" not in html


# --- Using a dead link is recorded ----------------------------------------------------------------


@pytest.mark.parametrize("spoil", ["revoked", "expired", "accepted"])
@pytest.mark.parametrize("signed_in", [False, True])
def test_using_a_dead_link_is_recorded(
    client: Client, team: Team, owner, spoil: str, signed_in: bool
) -> None:
    link = invite(owner, Role.EDITOR)
    if spoil == "revoked":
        invitations.revoke_invitation(actor=owner, invitation_id=link.invitation.pk)
    elif spoil == "expired":
        Invitation.objects.filter(pk=link.invitation.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    else:
        invitations.accept_invitation(actor=UserFactory.create(), token=link.token)
    visitor = UserFactory.create() if signed_in else None
    if visitor is not None:
        client.force_login(visitor)
    members = Membership.objects.filter(team=team).count()

    assert client.get(accept_url(link.token), follow=True).status_code == 410

    event = AuditEvent.objects.get(action="invitation.refused")
    assert (event.outcome, event.team, event.actor) == (Outcome.DENIED, team, visitor)
    assert event.target_id == str(link.invitation.pk)
    assert event.details == {"role": "editor", "reason": spoil}
    assert link.token not in str(event.details)
    assert Membership.objects.filter(team=team).count() == members


def test_a_link_that_never_existed_records_nothing(client: Client, owner) -> None:
    """No team to tell: a made-up token is a plain 404."""
    assert client.get(accept_url("made-up-token"), follow=True).status_code == 404
    assert not AuditEvent.objects.filter(action="invitation.refused").exists()


def test_a_working_link_records_no_refusal(client: Client, owner) -> None:
    link = invite(owner, Role.VIEWER)
    assert client.get(accept_url(link.token), follow=True).status_code == 200
    assert not AuditEvent.objects.filter(action="invitation.refused").exists()
