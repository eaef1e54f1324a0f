"""Member changes judged on what is true when they run, not when the page was read: an actor
demoted or removed meanwhile cannot use the old role, the last-Owner rule holds against a stale
view of one's own role, and refusals found under the lock stay in the audit log."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, Outcome
from teams import errors, services
from teams.models import Membership, Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def set_role(membership: Membership, role: Role) -> None:
    """Another request changes the role in the database; `membership` keeps the old one."""
    Membership.objects.filter(pk=membership.pk).update(role=role)


def test_a_demoted_owner_cannot_promote_with_the_old_role(team) -> None:
    actor = MembershipFactory.create(team=team, role=Role.OWNER)
    MembershipFactory.create(team=team, role=Role.OWNER)
    target = MembershipFactory.create(team=team, role=Role.VIEWER)
    set_role(actor, Role.EDITOR)
    with pytest.raises(errors.TeamError, match="Your own role"):
        services.change_member_role(actor=actor, membership_id=target.pk, role=Role.OWNER)
    assert Membership.objects.get(pk=target.pk).role == Role.VIEWER
    event = AuditEvent.objects.get(action="member.role_changed")
    assert (event.outcome, event.target_id) == (Outcome.FAILURE, str(target.pk))


def test_a_demoted_admin_cannot_remove_with_the_old_role(team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    actor = MembershipFactory.create(team=team, role=Role.ADMIN)
    target = MembershipFactory.create(team=team, role=Role.EDITOR)
    set_role(actor, Role.VIEWER)
    with pytest.raises(errors.TeamError, match="Your own role"):
        services.remove_member(actor=actor, membership_id=target.pk)
    assert Membership.objects.filter(pk=target.pk).exists()
    assert AuditEvent.objects.get(action="member.removed").outcome == Outcome.FAILURE


def test_a_removed_admin_cannot_change_roles(team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    actor = MembershipFactory.create(team=team, role=Role.ADMIN)
    target = MembershipFactory.create(team=team, role=Role.VIEWER)
    Membership.objects.filter(pk=actor.pk).delete()
    with pytest.raises(errors.TeamError):
        services.change_member_role(actor=actor, membership_id=target.pk, role=Role.EDITOR)
    assert Membership.objects.get(pk=target.pk).role == Role.VIEWER


def test_the_last_owner_cannot_leave_on_a_stale_smaller_role(team) -> None:
    """Read as Admin, promoted to Owner meanwhile, then the other Owner left: leaving now
    would leave the team without an Owner."""
    first_owner = MembershipFactory.create(team=team, role=Role.OWNER)
    stale = MembershipFactory.create(team=team, role=Role.ADMIN)
    set_role(stale, Role.OWNER)
    Membership.objects.filter(pk=first_owner.pk).delete()
    with pytest.raises(errors.LastOwnerError):
        services.leave_team(actor=stale)
    assert Membership.objects.filter(team=team, role=Role.OWNER).count() == 1
    event = AuditEvent.objects.get(action="member.left")
    assert event.outcome == Outcome.FAILURE and event.details["reason"] == "LastOwnerError"


def test_the_role_recorded_for_leaving_is_the_current_one(team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    stale = MembershipFactory.create(team=team, role=Role.VIEWER)
    set_role(stale, Role.EDITOR)
    services.leave_team(actor=stale)
    assert AuditEvent.objects.get(action="member.left").details["role"] == "editor"


def test_leaving_after_being_removed_records_nothing(team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    gone = MembershipFactory.create(team=team, role=Role.EDITOR)
    Membership.objects.filter(pk=gone.pk).delete()
    services.leave_team(actor=gone)
    assert not AuditEvent.objects.filter(action="member.left").exists()


def test_a_last_owner_refusal_is_recorded_as_a_failure(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(errors.LastOwnerError):
        services.change_member_role(actor=owner, membership_id=owner.pk, role=Role.ADMIN)
    event = AuditEvent.objects.get(action="member.role_changed")
    assert (event.outcome, event.team) == (Outcome.FAILURE, team)
    assert event.details == {"reason": "LastOwnerError", "role": "owner"}
