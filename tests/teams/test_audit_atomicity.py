"""A successful change and its audit event commit together: when the event cannot be written,
the change is rolled back (no unaudited change). A refusal or failure is recorded once, where
it happens, and stays although the change's transaction rolled back."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditChain, AuditEvent, Outcome
from audit.services import chain_scope, verify_chain
from keys import services as key_services
from keys.models import ApiKey
from teams import invitations, policy, services
from teams.models import Invitation, Membership, Role, Team
from tests.factories import MembershipFactory, UserFactory
from tests.support.sign_in_limits import is_locked_out, lock_out_account

pytestmark = pytest.mark.django_db


class AuditStoreDown(RuntimeError):
    pass


@pytest.fixture
def audit_fails_on(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """audit_fails_on("team.renamed"): writing that event raises, as a full disk or a lost
    connection would, after the change itself was written. Other events are written as usual.

    Every recording goes through audit.services.record, whatever name a module imported it
    under; the event's own save is the one place all of them pass."""
    real_save = AuditEvent.save

    def fail_on(action: str) -> None:
        def save(event: AuditEvent, *args: Any, **kwargs: Any) -> None:
            if event.action == action:
                raise AuditStoreDown(f"could not write {action}")
            real_save(event, *args, **kwargs)

        monkeypatch.setattr(AuditEvent, "save", save)

    return fail_on


def one_value(sql: str, params: list[Any]) -> Any:
    """Read straight from the database, past any object the test holds."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def chain_intact(team: Team | None) -> None:
    assert verify_chain(chain_scope(team)) == []


# --- Success and its event: both or neither -------------------------------------------------------


def test_rename_is_rolled_back_when_its_event_cannot_be_written(audit_fails_on) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    old = owner.team.name
    audit_fails_on("team.renamed")
    with pytest.raises(AuditStoreDown):
        services.rename_team(actor=owner, name="Unaudited name")
    table = Team._meta.db_table
    assert one_value(f"SELECT name FROM {table} WHERE id = %s", [owner.team.pk]) == old
    assert not AuditEvent.objects.filter(action="team.renamed").exists()


def test_create_team_leaves_no_team_and_no_owner(audit_fails_on) -> None:
    user = UserFactory.create()
    audit_fails_on("team.created")
    with pytest.raises(AuditStoreDown):
        services.create_team(actor=user, name="Ghost Studio")
    assert not Team.objects.filter(name="Ghost Studio").exists()
    assert not Membership.objects.filter(user=user).exists()


def test_role_change_and_the_revocations_it_caused_are_rolled_back(
    team: Team, audit_fails_on
) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    link = invitations.create_invitation(actor=admin, role=Role.EDITOR)
    events_before = AuditEvent.objects.count()
    audit_fails_on("member.role_changed")

    with pytest.raises(AuditStoreDown):
        services.change_member_role(actor=owner, membership_id=admin.pk, role=Role.VIEWER)

    table = Membership._meta.db_table
    assert one_value(f"SELECT role FROM {table} WHERE id = %s", [admin.pk]) == "admin"
    assert Invitation.objects.get(pk=link.invitation.pk).revoked_at is None
    # The revocation's event, written before the crash, went with it.
    assert AuditEvent.objects.count() == events_before
    chain_intact(team)
    head = AuditChain.objects.get(scope=chain_scope(team))
    assert head.seq == AuditEvent.objects.filter(team=team).count()


def test_removal_is_rolled_back(team: Team, audit_fails_on) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    audit_fails_on("member.removed")
    with pytest.raises(AuditStoreDown):
        services.remove_member(actor=owner, membership_id=editor.pk)
    assert Membership.objects.filter(pk=editor.pk).exists()
    chain_intact(team)


def test_leaving_is_rolled_back(team: Team, audit_fails_on) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    audit_fails_on("member.left")
    with pytest.raises(AuditStoreDown):
        services.leave_team(actor=viewer)
    assert Membership.objects.filter(pk=viewer.pk).exists()


def test_unlock_is_rolled_back(team: Team, audit_fails_on) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    locked = MembershipFactory.create(team=team, role=Role.EDITOR)
    lock_out_account(locked.user.username)
    audit_fails_on("member.unlocked")
    with pytest.raises(AuditStoreDown):
        services.unlock_member(actor=owner, membership_id=locked.pk)
    assert is_locked_out(locked.user.username)


def test_invitation_is_not_created(team: Team, audit_fails_on) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    audit_fails_on("invitation.created")
    with pytest.raises(AuditStoreDown):
        invitations.create_invitation(actor=owner, role=Role.VIEWER)
    table = Invitation._meta.db_table
    assert one_value(f"SELECT COUNT(*) FROM {table} WHERE team_id = %s", [team.pk]) == 0


def test_api_key_is_not_stored(audit_fails_on) -> None:
    user = UserFactory.create()
    audit_fails_on("api_key.added")
    with pytest.raises(AuditStoreDown):
        key_services.add_api_key(
            actor=user, label="Unaudited", raw_key=secrets.token_hex(16), skip_verification=True
        )
    table = ApiKey._meta.db_table
    assert one_value(f"SELECT COUNT(*) FROM {table} WHERE owner_id = %s", [user.pk]) == 0


def test_api_key_revocation_is_rolled_back(audit_fails_on) -> None:
    user = UserFactory.create()
    api_key = key_services.add_api_key(
        actor=user, label="Kept", raw_key=secrets.token_hex(16), skip_verification=True
    )
    audit_fails_on("api_key.revoked")
    with pytest.raises(AuditStoreDown):
        key_services.revoke_api_key(actor=user, api_key_id=api_key.pk)
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.revoked_at is None and stored.ciphertext == api_key.ciphertext


def test_a_crash_in_the_view_answers_500_and_changes_nothing(team: Team, audit_fails_on) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    audit_fails_on("member.removed")
    client = Client(raise_request_exception=False)
    client.force_login(owner.user)
    response = client.post(reverse("teams:member-remove", args=[team.slug, editor.pk]))
    assert response.status_code == 500
    assert Membership.objects.filter(pk=editor.pk).exists()


# --- Refusals: recorded once, and kept ------------------------------------------------------------


def denied() -> list[tuple[str, str]]:
    return [
        (e.action, e.target_id)
        for e in AuditEvent.objects.filter(outcome=Outcome.DENIED).order_by("id")
    ]


def test_a_refusal_at_the_floor_is_recorded_once(client: Client, team: Team) -> None:
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(viewer.user)
    response = client.post(reverse("teams:member-remove", args=[team.slug, editor.pk]))
    assert response.status_code == 403
    assert Membership.objects.filter(pk=editor.pk).exists()
    [event] = AuditEvent.objects.filter(outcome=Outcome.DENIED)
    assert (event.action, event.actor, event.team) == ("member.remove", viewer.user, team)
    assert event.details == {"method": "POST", "role": "viewer", "required": "admin"}


def test_a_refusal_on_the_target_is_recorded_once(client: Client, team: Team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(admin.user)
    response = client.post(reverse("teams:member-remove", args=[team.slug, owner.pk]))
    assert response.status_code == 302
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert denied() == [("member.removed", str(owner.pk))]


def test_a_service_refusal_without_a_view_is_recorded_once(team: Team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    other_admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    with pytest.raises(policy.NotAllowed):
        services.change_member_role(actor=admin, membership_id=other_admin.pk, role=Role.VIEWER)
    assert denied() == [("member.role_changed", str(other_admin.pk))]
    assert Membership.objects.get(pk=other_admin.pk).role == Role.ADMIN


def test_a_failure_found_under_the_lock_is_recorded_once_and_kept(
    client: Client, team: Team
) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    client.post(reverse("teams:leave", args=[team.slug]))
    assert Membership.objects.filter(pk=owner.pk).exists()
    [event] = AuditEvent.objects.filter(team=team)
    assert (event.action, event.outcome, event.details["reason"]) == (
        "member.left",
        Outcome.FAILURE,
        "LastOwnerError",
    )
    chain_intact(team)
