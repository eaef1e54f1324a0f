"""Members: who may change whose role, removing, leaving, the last Owner, and the page."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Role
from audit.models import AuditEvent, Outcome
from tests.accounts.test_role_matrix import fast_password_hashing  # noqa: F401
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
        services.change_member_role(actor, target.pk, new_role)
        assert role_of(target) == new_role
        event = AuditEvent.objects.get(action="member.role_changed")
        assert event.outcome == Outcome.SUCCESS
        assert event.details["role"] == [target_role.value, new_role.value]
        assert event.target_id == str(target.pk)
    else:
        with pytest.raises(services.NotAllowed):
            services.change_member_role(actor, target.pk, new_role)
        assert role_of(target) == target_role
        event = AuditEvent.objects.get(action="member.role_changed")
        assert event.outcome == Outcome.DENIED
        assert event.details["role_change"] == [target_role.value, new_role.value]


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_editors_and_viewers_cannot_change_roles(team, role: Role) -> None:
    actor = MembershipFactory.create(team=team, role=role)
    target = MembershipFactory.create(team=team, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        services.change_member_role(actor, target.pk, Role.EDITOR)
    assert role_of(target) == Role.VIEWER
    assert AuditEvent.objects.get(action="member.role_changed").outcome == Outcome.DENIED


def test_last_owner_cannot_be_demoted(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(services.LastOwnerError):
        services.change_member_role(owner, owner.pk, Role.ADMIN)
    assert role_of(owner) == Role.OWNER


def test_owner_may_step_down_when_another_owner_remains(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    other = MembershipFactory.create(team=team, role=Role.OWNER)
    services.change_member_role(owner, owner.pk, Role.ADMIN)
    assert role_of(owner) == Role.ADMIN
    owner.refresh_from_db()
    # Now the other is the last Owner, and the demoted one can no longer touch them.
    with pytest.raises(services.NotAllowed):
        services.change_member_role(owner, other.pk, Role.ADMIN)
    with pytest.raises(services.LastOwnerError):
        services.change_member_role(other, other.pk, Role.VIEWER)


def test_admin_cannot_change_own_role(team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    with pytest.raises(services.NotAllowed):
        services.change_member_role(admin, admin.pk, Role.EDITOR)
    assert role_of(admin) == Role.ADMIN


def test_member_of_another_team_is_not_found(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    stranger = MembershipFactory.create(team=TeamFactory.create(), role=Role.VIEWER)
    with pytest.raises(services.MemberNotFound):
        services.change_member_role(owner, stranger.pk, Role.EDITOR)
    with pytest.raises(services.MemberNotFound):
        services.remove_member(owner, stranger.pk)
    assert role_of(stranger) == Role.VIEWER


# --- Removing and leaving ------------------------------------------------------------------------


def test_admin_removes_editor_and_it_is_audited(team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    services.remove_member(admin, editor.pk)
    assert not Membership.objects.filter(pk=editor.pk).exists()
    event = AuditEvent.objects.get(action="member.removed")
    assert (event.outcome, event.target_id, event.team) == (Outcome.SUCCESS, str(editor.pk), team)
    assert event.details == {"username": editor.user.username, "role": "editor"}


@pytest.mark.parametrize("target_role", [Role.ADMIN, Role.OWNER])
def test_admin_cannot_remove_admins_or_owners(team, target_role: Role) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    target = MembershipFactory.create(team=team, role=target_role)
    with pytest.raises(services.NotAllowed):
        services.remove_member(admin, target.pk)
    assert Membership.objects.filter(pk=target.pk).exists()
    assert AuditEvent.objects.get(action="member.removed").outcome == Outcome.DENIED


def test_owner_removes_another_owner(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    other = MembershipFactory.create(team=team, role=Role.OWNER)
    services.remove_member(owner, other.pk)
    assert not Membership.objects.filter(pk=other.pk).exists()


def test_nobody_removes_themselves_they_leave(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(services.TeamError, match="Leave team"):
        services.remove_member(owner, owner.pk)
    assert Membership.objects.filter(pk=owner.pk).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.ADMIN])
def test_members_may_leave(team, role: Role) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    member = MembershipFactory.create(team=team, role=role)
    services.leave_team(member)
    assert not Membership.objects.filter(pk=member.pk).exists()
    event = AuditEvent.objects.get(action="member.left")
    assert (event.actor, event.team, event.details["role"]) == (member.user, team, role.value)


def test_last_owner_cannot_leave_but_one_of_two_can(team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    with pytest.raises(services.LastOwnerError):
        services.leave_team(owner)
    assert Membership.objects.filter(pk=owner.pk).exists()
    second = MembershipFactory.create(team=team, role=Role.OWNER)
    services.leave_team(owner)
    assert list(Membership.objects.filter(team=team)) == [second]


# --- The members page ----------------------------------------------------------------------------


def _members_page(client: Client, membership: Membership):
    return client.get(reverse("team_members", args=[membership.team.slug]))


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
    assert reverse("member_remove", args=[team.slug, editor.pk]) in html
    assert reverse("member_role", args=[team.slug, editor.pk]) in html
    # An admin's own row offers leaving, not removing or changing.
    assert reverse("member_remove", args=[team.slug, admin.pk]) not in html
    assert reverse("member_role", args=[team.slug, admin.pk]) not in html


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
    assert reverse("member_remove", args=[team.slug, other.pk]) not in html
    assert "<select" not in html.split("<main", 1)[1]


def test_members_page_runs_in_constant_queries(
    client: Client, team, django_assert_num_queries
) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    _members_page(client, owner)  # warm up: session, caches
    MembershipFactory.create_batch(3, team=team, role=Role.EDITOR)
    with django_assert_num_queries(6) as few:
        assert _members_page(client, owner).status_code == 200
    MembershipFactory.create_batch(20, team=team, role=Role.VIEWER)
    with django_assert_num_queries(len(few.captured_queries)):
        response = _members_page(client, owner)
    assert len(response.context["rows"]) == 24


def test_role_change_view_shows_what_happened(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    url = reverse("member_role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "editor"}, follow=True)
    assert role_of(viewer) == Role.EDITOR
    assert f"{viewer.user.display_name} is now Editor" in response.content.decode()


def test_role_change_view_refuses_crafted_promotion_with_a_message(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    url = reverse("member_role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "owner"}, follow=True)
    assert role_of(viewer) == Role.VIEWER
    assert "Only an Owner can change the role" in response.content.decode()
    assert AuditEvent.objects.get(action="member.role_changed").outcome == Outcome.DENIED


def test_role_change_view_rejects_unknown_role(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    viewer = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(owner.user)
    url = reverse("member_role", args=[team.slug, viewer.pk])
    response = client.post(url, {f"m{viewer.pk}-role": "god"}, follow=True)
    assert role_of(viewer) == Role.VIEWER
    assert "Choose one of the roles" in response.content.decode()


def test_last_owner_demotion_via_view_explains(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    url = reverse("member_role", args=[team.slug, owner.pk])
    response = client.post(url, {f"m{owner.pk}-role": "admin"}, follow=True)
    assert role_of(owner) == Role.OWNER
    assert "Make someone else an Owner first" in response.content.decode()


def test_cross_team_member_ids_answer_404(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    stranger = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(owner.user)
    remove = reverse("member_remove", args=[team.slug, stranger.pk])
    role = reverse("member_role", args=[team.slug, stranger.pk])
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
    url = reverse("member_remove", args=[team.slug, editor.pk])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert 'id="modal-title"' in fragment
    assert "data-close-dialog" in fragment
    page = client.get(url).content.decode()
    assert "<html" in page
    assert f'href="{reverse("team_members", args=[team.slug])}"' in page
    response = client.post(url, follow=True)
    assert not Membership.objects.filter(pk=editor.pk).exists()
    assert "no longer has access" in response.content.decode()


def test_remove_confirmation_explains_when_not_allowed(client: Client, team) -> None:
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    other_admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    client.force_login(admin.user)
    page = client.get(reverse("member_remove", args=[team.slug, other_admin.pk]))
    html = page.content.decode()
    assert "Only an Owner can remove Admins" in html
    assert "Remove member</button>" not in html


def test_leave_view_redirects_home_with_message(client: Client, team) -> None:
    MembershipFactory.create(team=team, role=Role.OWNER)
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    client.force_login(editor.user)
    response = client.post(reverse("team_leave", args=[team.slug]))
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(pk=editor.pk).exists()
    assert client.get(reverse("team_overview", args=[team.slug])).status_code == 404


def test_last_owner_leaving_via_view_is_refused_with_next_step(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(reverse("team_leave", args=[team.slug]), follow=True)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert "Make another member an Owner first" in response.content.decode()
