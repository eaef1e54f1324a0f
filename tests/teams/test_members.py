"""Members: who may change whose role, removing, leaving, the last Owner, and the page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from teams import errors, policy, services
from teams.models import Membership, Role
from tests.factories import MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db


def role_of(membership: Membership) -> str:
    return Membership.objects.get(pk=membership.pk).role


# --- Changing roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor_role", "target_role", "new_role", "allowed"),
    [
        # Admins manage Editors and Viewers, between Editor and Viewer.
        (Role.ADMIN, Role.VIEWER, Role.EDITOR, True),
        (Role.ADMIN, Role.EDITOR, Role.VIEWER, True),
        (Role.ADMIN, Role.EDITOR, Role.ADMIN, False),
        (Role.ADMIN, Role.VIEWER, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, Role.VIEWER, False),
        (Role.ADMIN, Role.OWNER, Role.VIEWER, False),
        # Owners manage everyone.
        (Role.OWNER, Role.VIEWER, Role.ADMIN, True),
        (Role.OWNER, Role.EDITOR, Role.OWNER, True),
        (Role.OWNER, Role.ADMIN, Role.EDITOR, True),
        (Role.OWNER, Role.OWNER, Role.ADMIN, True),
    ],
)
def test_who_may_change_whose_role(
    team, actor_role: Role, target_role: Role, new_role: Role, allowed: bool
) -> None:
    actor = MembershipFactory.create(team=team, role=actor_role)
    if actor_role != Role.OWNER:
        MembershipFactory.create(team=team, role=Role.OWNER)
    target = MembershipFactory.create(team=team, role=target_role)
    if allowed:
        services.change_member_role(actor=actor, membership_id=target.pk, role=new_role)
        assert role_of(target) == new_role
        event = AuditEvent.objects.get(action="member.role_changed")
        assert event.outcome == Outcome.SUCCESS
        assert event.details["role"] == [target_role.value, new_role.value]
        assert event.target_id == str(target.pk)
    else:
        with pytest.raises(policy.NotAllowed):
            services.change_member_role(actor=actor, membership_id=target.pk, role=new_role)
        assert role_of(target) == target_role
        event = AuditEvent.objects.get(action="member.role_changed")
        assert event.outcome == Outcome.DENIED
        assert event.details["role_change"] == [target_role.value, new_role.value]


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_editors_and_viewers_cannot_change_roles(team, role: Role) -> None:
    actor = MembershipFactory.create(team=team, role=role)
    target = MembershipFactory.create(team=team, role=Role.VIEWER)
    with pytest.raises(policy.NotAllowed):
        services.change_member_role(actor=actor, membership_id=target.pk, role=Role.EDITOR)
    assert role_of(target) == Role.VIEWER
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("member.role_changed", Outcome.DENIED)


def test_last_owner_cannot_be_demoted(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(errors.LastOwnerError):
        services.change_member_role(actor=owner, membership_id=owner.pk, role=Role.ADMIN)
    assert role_of(owner) == Role.OWNER


def test_owner_may_step_down_when_another_owner_remains(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    other = MembershipFactory.create(team=team, role=Role.OWNER)
    services.change_member_role(actor=owner, membership_id=owner.pk, role=Role.ADMIN)
    assert role_of(owner) == Role.ADMIN
    owner.refresh_from_db()
    # Now the other is the last Owner, and the demoted one can no longer touch them.
    with pytest.raises(policy.NotAllowed):
        services.change_member_role(actor=owner, membership_id=other.pk, role=Role.ADMIN)
    with pytest.raises(errors.LastOwnerError):
        services.change_member_role(actor=other, membership_id=other.pk, role=Role.VIEWER)


def test_admin_cannot_change_own_role(team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    with pytest.raises(policy.NotAllowed):
        services.change_member_role(actor=admin, membership_id=admin.pk, role=Role.EDITOR)
    assert role_of(admin) == Role.ADMIN


def test_member_of_another_team_is_not_found(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    stranger = MembershipFactory.create(team=TeamFactory.create(), role=Role.VIEWER)
    with pytest.raises(errors.MemberNotFound):
        services.change_member_role(actor=owner, membership_id=stranger.pk, role=Role.EDITOR)
    with pytest.raises(errors.MemberNotFound):
        services.remove_member(actor=owner, membership_id=stranger.pk)
    assert role_of(stranger) == Role.VIEWER


# --- Removing and leaving ------------------------------------------------------------------------


def test_admin_removes_editor_and_it_is_audited(team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    services.remove_member(actor=admin, membership_id=editor.pk)
    assert not Membership.objects.filter(pk=editor.pk).exists()
    event = AuditEvent.objects.get(action="member.removed")
    assert (event.outcome, event.target_id, event.team) == (Outcome.SUCCESS, str(editor.pk), team)
    assert event.details == {
        "username": editor.user.username,
        "role": "editor",
        "invitations_revoked": 0,
    }


@pytest.mark.parametrize("target_role", [Role.ADMIN, Role.OWNER])
def test_admin_cannot_remove_admins_or_owners(team, target_role: Role) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    target = MembershipFactory.create(team=team, role=target_role)
    with pytest.raises(policy.NotAllowed):
        services.remove_member(actor=admin, membership_id=target.pk)
    assert Membership.objects.filter(pk=target.pk).exists()
    assert AuditEvent.objects.get(action="member.removed").outcome == Outcome.DENIED


def test_owner_removes_another_owner(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    other = MembershipFactory.create(team=team, role=Role.OWNER)
    services.remove_member(actor=owner, membership_id=other.pk)
    assert not Membership.objects.filter(pk=other.pk).exists()


def test_nobody_removes_themselves_they_leave(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(errors.TeamError, match="Leave team"):
        services.remove_member(actor=owner, membership_id=owner.pk)
    assert Membership.objects.filter(pk=owner.pk).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.ADMIN])
def test_members_may_leave(team, role: Role) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    member = MembershipFactory.create(team=team, role=role)
    services.leave_team(actor=member)
    assert not Membership.objects.filter(pk=member.pk).exists()
    event = AuditEvent.objects.get(action="member.left")
    assert (event.actor, event.team, event.details["role"]) == (member.user, team, role.value)


def test_last_owner_cannot_leave_but_one_of_two_can(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(errors.LastOwnerError):
        services.leave_team(actor=owner)
    assert Membership.objects.filter(pk=owner.pk).exists()
    second = MembershipFactory.create(team=team, role=Role.OWNER)
    services.leave_team(actor=owner)
    assert list(Membership.objects.filter(team=team)) == [second]


# --- The members page ----------------------------------------------------------------------------


def _members_page(client: Client, membership: Membership):
    return client.get(reverse("teams:members", args=[membership.team.slug]))


def test_members_page_lists_members_with_badges(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    outsider = MembershipFactory.create(role=Role.EDITOR)
    client.force_login(admin.user)
    html = _members_page(client, admin).content.decode()
    assert editor.user.username in html
    assert editor.user.display_name in html
    assert outsider.user.username not in html
    assert "badge badge-editor" in html
    assert reverse("teams:member-remove", args=[team.slug, editor.pk]) in html
    assert reverse("teams:member-role", args=[team.slug, editor.pk]) in html
    # An admin's own row offers leaving, not removing or changing.
    assert reverse("teams:member-remove", args=[team.slug, admin.pk]) not in html
    assert reverse("teams:member-role", args=[team.slug, admin.pk]) not in html


def test_admin_is_offered_only_editor_and_viewer(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    html = _members_page(client, admin).content.decode()
    assert '<option value="editor"' in html
    assert '<option value="admin"' not in html
    assert '<option value="owner"' not in html


def test_viewer_sees_members_without_controls(client: Client, team) -> None:
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    other = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(viewer.user)
    html = _members_page(client, viewer).content.decode()
    assert other.user.username in html
    assert "member_role" not in html
    assert reverse("teams:member-remove", args=[team.slug, other.pk]) not in html
    assert "<select" not in html.split("<main", 1)[1]


def test_members_page_runs_in_constant_queries(
    client: Client, team, django_assert_num_queries
) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    _members_page(client, owner)  # warm up: session, caches
    MembershipFactory.create_batch(3, team=team, role=Role.EDITOR)
    # session, user, membership, members, sign-in lockouts, pending invitations, switcher
    with django_assert_num_queries(7) as few:
        assert _members_page(client, owner).status_code == 200
    MembershipFactory.create_batch(20, team=team, role=Role.VIEWER)
    with django_assert_num_queries(len(few.captured_queries)):
        response = _members_page(client, owner)
    assert len(response.context["rows"]) == 24


def test_role_change_view_shows_what_happened(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    url = reverse("teams:member-role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "editor"}, follow=True)
    assert role_of(viewer) == Role.EDITOR
    assert f"{viewer.user.display_name} is now Editor" in response.content.decode()


def test_role_change_view_refuses_crafted_promotion_with_a_message(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    url = reverse("teams:member-role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "owner"}, follow=True)
    assert role_of(viewer) == Role.VIEWER
    assert "Only an Owner can change the role" in response.content.decode()
    assert AuditEvent.objects.get(action="member.role_changed").outcome == Outcome.DENIED


def test_role_change_view_rejects_unknown_role(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(owner.user)
    url = reverse("teams:member-role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "god"}, follow=True)
    assert role_of(viewer) == Role.VIEWER
    assert "Choose one of the roles" in response.content.decode()


def test_last_owner_demotion_via_view_explains(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    url = reverse("teams:member-role", args=[team.slug, owner.pk])
    response = client.post(url, {f"m{owner.pk}-role": "admin"}, follow=True)
    assert role_of(owner) == Role.OWNER
    assert "Make someone else an Owner first" in response.content.decode()


def test_cross_team_member_ids_answer_404(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    stranger = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(owner.user)
    remove = reverse("teams:member-remove", args=[team.slug, stranger.pk])
    role = reverse("teams:member-role", args=[team.slug, stranger.pk])
    assert client.get(remove).status_code == 404
    assert client.post(remove).status_code == 404
    assert client.post(role, {f"m{stranger.pk}-role": "editor"}).status_code == 404
    assert Membership.objects.get(pk=stranger.pk).role == Role.VIEWER


def test_remove_confirmation_is_a_dialog_fragment_for_htmx_and_a_page_otherwise(
    client: Client, team
) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(admin.user)
    url = reverse("teams:member-remove", args=[team.slug, editor.pk])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert 'id="modal-title"' in fragment
    assert "data-close-dialog" in fragment
    page = client.get(url).content.decode()
    assert "<html" in page
    assert f'href="{reverse("teams:members", args=[team.slug])}"' in page
    response = client.post(url, follow=True)
    assert not Membership.objects.filter(pk=editor.pk).exists()
    assert "no longer has access" in response.content.decode()


def test_remove_confirmation_explains_when_not_allowed(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    other_admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    client.force_login(admin.user)
    page = client.get(reverse("teams:member-remove", args=[team.slug, other_admin.pk]))
    html = page.content.decode()
    assert "Only an Owner can remove Admins" in html
    assert "Remove member</button>" not in html


def test_leave_view_redirects_home_with_message(client: Client, team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(editor.user)
    response = client.post(reverse("teams:leave", args=[team.slug]))
    assert response["Location"] == reverse("teams:home")
    assert not Membership.objects.filter(pk=editor.pk).exists()
    # "You no longer have access" (test_departures.py), no longer a 404.
    assert client.get(reverse("teams:overview", args=[team.slug])).status_code == 403


def test_last_owner_leaving_via_view_is_refused_with_next_step(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(reverse("teams:leave", args=[team.slug]), follow=True)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert "Make another member an Owner first" in response.content.decode()


# --- The only Owner is not offered what would be refused ------------------------------------------


def _row(html: str, member: Membership) -> str:
    return html.split(f'id="member-{member.pk}"', 1)[1].split("</tr>", 1)[0]


def test_the_only_owner_is_offered_neither_leave_nor_a_demotion(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(owner.user)
    html = _members_page(client, owner).content.decode()
    own_row = _row(html, owner)
    assert reverse("teams:member-role", args=[team.slug, owner.pk]) not in own_row
    assert "<select" not in own_row
    assert "Only Owner" in own_row
    assert reverse("teams:leave", args=[team.slug]) not in html
    # Managing the others is still offered.
    assert reverse("teams:member-role", args=[team.slug, editor.pk]) in _row(html, editor)


def test_with_two_owners_each_is_offered_leave_and_a_demotion(client: Client, team) -> None:
    first = MembershipFactory.create(team=team, role=Role.OWNER)
    second = MembershipFactory.create(team=team, role=Role.OWNER)
    for owner in (first, second):
        client.force_login(owner.user)
        html = _members_page(client, owner).content.decode()
        own_row = _row(html, owner)
        assert reverse("teams:member-role", args=[team.slug, owner.pk]) in own_row
        assert '<option value="admin"' in own_row
        assert reverse("teams:leave", args=[team.slug]) in own_row
    # And the offer is true: the demotion works.
    response = client.post(
        reverse("teams:member-role", args=[team.slug, second.pk]),
        {f"m{second.pk}-role": "admin"},
    )
    assert response.status_code == 302
    assert role_of(second) == Role.ADMIN


def test_the_overview_does_not_offer_leave_to_the_only_owner(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    overview = reverse("teams:overview", args=[team.slug])
    html = client.get(overview).content.decode()
    assert reverse("teams:leave", args=[team.slug]) not in html
    assert "You are the only Owner" in html
    MembershipFactory.create(team=team, role=Role.OWNER)
    html = client.get(overview).content.decode()
    assert f'href="{reverse("teams:leave", args=[team.slug])}"' in html
    assert "You are the only Owner" not in html


def test_the_leave_page_explains_instead_of_offering_to_the_only_owner(
    client: Client, team
) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    html = client.get(reverse("teams:leave", args=[team.slug])).content.decode()
    assert "You are the only Owner" in html
    assert "Leave team</button>" not in html
