"""Transfer ownership, archive, unarchive and delete: typed confirmations, who may, what each
changes and records, and that deletion keeps the audit chain verifiable and sealed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.chain import verify_scope
from audit.models import AuditCheckpoint, AuditEvent, CheckpointKind, Outcome
from audit.services import chain_scope
from characters.models import Character, Revision
from jobs.models import Job
from keys.models import ApiKey
from teams import invitations, lifecycle, policy
from teams.errors import TeamError
from teams.models import Departure, Invitation, Membership, Role, Team
from tests.factories import CharacterFactory, MembershipFactory, RevisionFactory

pytestmark = pytest.mark.django_db


def url(name: str, team: Team) -> str:
    return reverse(f"teams:{name}", kwargs={"team_slug": team.slug})


@pytest.fixture
def owner(team: Team) -> Membership:
    return MembershipFactory.create(team=team, role=Role.OWNER)


@pytest.fixture
def editor(team: Team) -> Membership:
    return MembershipFactory.create(team=team, role=Role.EDITOR)


# --- Transfer ownership --------------------------------------------------------------------------


def test_transfer_makes_the_member_owner_and_the_owner_admin(
    client: Client, team: Team, owner: Membership, editor: Membership
) -> None:
    admin_link = invitations.create_invitation(actor=owner, role=Role.ADMIN)
    editor_link = invitations.create_invitation(actor=owner, role=Role.EDITOR)
    client.force_login(owner.user)
    response = client.post(url("transfer", team), {"member": editor.pk, "confirm": team.name})
    assert response.status_code == 302
    assert Membership.objects.get(pk=editor.pk).role == Role.OWNER
    assert Membership.objects.get(pk=owner.pk).role == Role.ADMIN
    # Power ends with the person's: an Admin cannot invite Admins.
    assert Invitation.objects.get(pk=admin_link.invitation.pk).revoked_at is not None
    assert Invitation.objects.get(pk=editor_link.invitation.pk).revoked_at is None
    event = AuditEvent.objects.get(action="team.ownership_transferred")
    assert (event.actor_id, event.target_id) == (owner.user_id, str(editor.pk))
    assert event.details["invitations_revoked"] == 1
    page = client.get(response["Location"]).content.decode()
    assert "is now an Owner of" in page


def test_a_wrong_typed_name_changes_nothing_and_keeps_what_was_typed(
    client: Client, team: Team, owner: Membership, editor: Membership
) -> None:
    client.force_login(owner.user)
    response = client.post(
        url("transfer", team), {"member": editor.pk, "confirm": team.name.upper() + "x"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "That is not the team&#x27;s name" in html
    assert f'value="{team.name.upper()}x"' in html
    assert f'<option value="{editor.pk}" selected>' in html
    assert Membership.objects.get(pk=editor.pk).role == Role.EDITOR
    assert not AuditEvent.objects.filter(action="team.ownership_transferred").exists()


def test_transfer_to_yourself_or_an_outsider_is_refused(team: Team, owner: Membership) -> None:
    with pytest.raises(TeamError):
        lifecycle.transfer_ownership(actor=owner, membership_id=owner.pk)
    stranger = MembershipFactory.create(role=Role.VIEWER)  # another team
    with pytest.raises(Exception, match="not a member"):
        lifecycle.transfer_ownership(actor=owner, membership_id=stranger.pk)
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_only_owners_may_transfer_and_the_refusal_is_recorded(
    team: Team, editor: Membership
) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    with pytest.raises(policy.NotAllowed):
        lifecycle.transfer_ownership(actor=admin, membership_id=editor.pk)
    assert Membership.objects.get(pk=editor.pk).role == Role.EDITOR
    event = AuditEvent.objects.get(action="team.ownership_transferred")
    assert event.outcome == Outcome.DENIED


def test_a_transfer_after_losing_ownership_meanwhile_is_refused(
    team: Team, owner: Membership, editor: Membership
) -> None:
    stale = Membership.objects.select_related("team", "user").get(pk=owner.pk)
    Membership.objects.filter(pk=owner.pk).update(role=Role.ADMIN)
    with pytest.raises(TeamError, match="Your own role"):
        lifecycle.transfer_ownership(actor=stale, membership_id=editor.pk)
    assert Membership.objects.get(pk=editor.pk).role == Role.EDITOR
    assert AuditEvent.objects.get(action="team.ownership_transferred").outcome == Outcome.FAILURE


def test_the_transfer_page_lists_only_the_other_members(
    client: Client, team: Team, owner: Membership, editor: Membership
) -> None:
    client.force_login(owner.user)
    html = client.get(url("transfer", team)).content.decode()
    assert f'<option value="{editor.pk}">' in html
    assert f'<option value="{owner.pk}">' not in html


# --- Archive and unarchive -----------------------------------------------------------------------


def test_archive_with_typed_name_then_unarchive(
    client: Client, team: Team, owner: Membership
) -> None:
    client.force_login(owner.user)
    refused = client.post(url("archive", team), {"confirm": "wrong"})
    assert refused.status_code == 200
    assert Team.objects.get(pk=team.pk).archived_at is None
    done = client.post(url("archive", team), {"confirm": f"  {team.name} "}, follow=True)
    assert "is archived: everyone can still read it" in done.content.decode()
    assert Team.objects.get(pk=team.pk).archived_at is not None
    settings_page = client.get(url("settings", team)).content.decode()
    assert "Unarchive team" in settings_page
    assert "Save name" not in settings_page  # renaming is a change
    client.post(url("unarchive", team))
    assert Team.objects.get(pk=team.pk).archived_at is None
    actions = list(
        AuditEvent.objects.filter(team=team).order_by("id").values_list("action", flat=True)
    )
    assert actions[-2:] == ["team.archived", "team.unarchived"]


def test_only_owners_unarchive(client: Client, team: Team, owner: Membership) -> None:
    Team.objects.filter(pk=team.pk).update(archived_at=timezone.now())
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    client.force_login(admin.user)
    assert client.post(url("unarchive", team)).status_code == 403
    assert Team.objects.get(pk=team.pk).archived_at is not None


def test_an_archived_teams_invitation_links_wait(client: Client, team: Team, owner) -> None:
    link = invitations.create_invitation(actor=owner, role=Role.VIEWER)
    Team.objects.filter(pk=team.pk).update(archived_at=timezone.now())
    page = client.get(reverse("teams:invitation-accept", kwargs={"token": link.token}), follow=True)
    assert page.status_code == 410
    assert "This team is archived" in page.content.decode()
    Team.objects.filter(pk=team.pk).update(archived_at=None)
    page = client.get(reverse("teams:invitation-accept", kwargs={"token": link.token}), follow=True)
    assert page.status_code == 200


# --- Delete --------------------------------------------------------------------------------------


@pytest.fixture
def stocked(team: Team, owner: Membership, editor: Membership) -> dict[str, object]:
    """A team with characters (with revisions, bound to a key), a job and an invitation."""
    key = ApiKey.objects.create(owner=editor.user, label="Main", last_four="abcd", ciphertext="")
    characters = [
        CharacterFactory.create(team=team, bound_key=key, created_by=editor.user) for _ in range(3)
    ]
    RevisionFactory.create(character=characters[0])
    Job.objects.create(
        team=team, kind="import_all", scope=f"key:{key.pk}", created_by=editor.user, api_key=key
    )
    invitations.create_invitation(actor=owner, role=Role.EDITOR)
    other = CharacterFactory.create()  # another team's: untouched
    return {"key": key, "characters": characters, "other": other}


def test_delete_removes_local_rows_keeps_keys_and_seals_the_chain(
    client: Client, team: Team, owner: Membership, editor: Membership, stocked
) -> None:
    client.force_login(owner.user)
    page = client.get(url("delete", team)).content.decode()
    assert "3 characters" in page
    response = client.post(url("delete", team), {"confirm": team.name})
    assert response["Location"] == reverse("teams:home")
    team.refresh_from_db()
    assert team.deleted_at is not None
    assert not Membership.objects.filter(team=team).exists()
    assert not Invitation.objects.filter(team=team).exists()
    assert not Character.objects.filter(team=team).exists()
    assert not Revision.objects.filter(character__team=team).exists()
    assert not Job.objects.filter(team=team).exists()
    assert Character.objects.filter(pk=stocked["other"].pk).exists()
    assert ApiKey.objects.filter(pk=stocked["key"].pk).exists()  # keys are personal
    # The chain: kept, closed by team.deleted, sealed at its head, and still verifying.
    scope = chain_scope(team)
    last = AuditEvent.objects.filter(chain=scope).order_by("-seq").first()
    assert last is not None and last.action == "team.deleted"
    assert last.details["removed"] == {"characters": 3, "jobs": 1, "builds": 0}
    assert last.details["members"] == 2
    seal = AuditCheckpoint.objects.get(scope=scope, kind=CheckpointKind.SEAL)
    assert (seal.seq, seal.hash) == (last.seq, last.hash)
    report = verify_scope(scope)
    assert report.intact, report.problems
    assert report.last_seq == last.seq
    # The members are told, not shown a 404.
    assert set(Departure.objects.filter(team=team).values_list("user_id", flat=True)) == {
        owner.user_id,
        editor.user_id,
    }


def test_the_audit_verify_command_passes_after_a_delete(
    team: Team, owner: Membership, stocked
) -> None:
    from django.core.management import call_command

    lifecycle.delete_team(actor=owner)
    call_command("audit_verify")  # raises CommandError when a chain does not verify


def test_an_event_appended_after_the_seal_shows(team: Team, owner: Membership) -> None:
    from audit.services import record

    lifecycle.delete_team(actor=owner)
    scope = chain_scope(team)
    assert verify_scope(scope).intact
    sealed = AuditCheckpoint.objects.get(scope=scope, kind=CheckpointKind.SEAL).seq
    record("team.renamed", team=team, target_type="team")  # what a writer to the DB could add
    assert verify_scope(scope).problems == [
        f"{scope}: 1 event(s) after the chain was sealed at seq {sealed} (its team was deleted)"
    ]


def test_delete_needs_the_exact_name(client: Client, team: Team, owner: Membership, stocked):
    client.force_login(owner.user)
    response = client.post(url("delete", team), {"confirm": team.name.lower() + " "})
    assert response.status_code == 200
    assert "That is not the team&#x27;s name" in response.content.decode()
    assert Character.objects.filter(team=team).count() == 3
    assert Team.objects.get(pk=team.pk).deleted_at is None


def test_admins_cannot_delete(team: Team, stocked) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    with pytest.raises(policy.NotAllowed):
        lifecycle.delete_team(actor=admin)
    assert Character.objects.filter(team=team).count() == 3
    assert AuditEvent.objects.get(action="team.deleted").outcome == Outcome.DENIED


def test_an_archived_team_can_be_deleted(team: Team, owner: Membership) -> None:
    Team.objects.filter(pk=team.pk).update(archived_at=timezone.now() - timedelta(days=1))
    owner.team.refresh_from_db()
    lifecycle.delete_team(actor=owner)
    assert Team.objects.get(pk=team.pk).deleted_at is not None


def test_the_settings_page_offers_the_lifecycle_to_owners(
    client: Client, team: Team, owner: Membership
) -> None:
    client.force_login(owner.user)
    html = client.get(url("settings", team)).content.decode().split('<main id="main"')[1]
    for name in ("transfer", "archive", "delete"):
        assert f'href="{url(name, team)}"' in html
