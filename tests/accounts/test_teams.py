"""Creating, renaming, listing and switching teams; the team overview page."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Role, Team
from audit.models import AuditEvent, Outcome
from tests.accounts.test_role_matrix import fast_password_hashing  # noqa: F401
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- Services ------------------------------------------------------------------------------------


def test_create_team_makes_the_creator_owner_and_records_it() -> None:
    user = UserFactory.create()
    team = services.create_team(user, "  Northwind   Games ")
    assert team.name == "Northwind   Games"
    assert team.slug == "northwind-games"
    assert team.created_by == user
    membership = Membership.objects.get(team=team, user=user)
    assert membership.role == Role.OWNER
    event = AuditEvent.objects.get(action="team.created")
    assert event.team == team
    assert event.actor == user
    assert event.outcome == Outcome.SUCCESS
    assert event.details == {"name": team.name, "slug": "northwind-games"}


def test_slugs_are_unique_and_never_empty() -> None:
    user = UserFactory.create()
    first = services.create_team(user, "Blue Whale")
    second = services.create_team(user, "Blue whale!")
    third = services.create_team(user, "Blue-Whale")
    assert [first.slug, second.slug, third.slug] == ["blue-whale", "blue-whale-2", "blue-whale-3"]
    assert services.create_team(user, "!!!").slug == "team"
    assert len(services.create_team(user, "x" * 100).slug) <= 50
    long_again = services.create_team(user, "x" * 100)
    assert long_again.slug.endswith("-2")
    assert len(long_again.slug) <= 50


def test_owner_renames_team_slug_stays_and_change_is_audited() -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    old_name, slug = owner.team.name, owner.team.slug
    services.rename_team(owner, "New Name")
    team = Team.objects.get(pk=owner.team.pk)
    assert (team.name, team.slug) == ("New Name", slug)
    event = AuditEvent.objects.get(action="team.renamed")
    assert event.details == {"name": [old_name, "New Name"]}


def test_renaming_to_the_same_name_records_nothing() -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    services.rename_team(owner, owner.team.name)
    assert not AuditEvent.objects.filter(action="team.renamed").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.EDITOR, Role.VIEWER])
def test_only_owner_renames_and_refusal_is_audited(role: Role) -> None:
    member = MembershipFactory.create(role=role)
    old_name = member.team.name
    with pytest.raises(PermissionDenied):
        services.rename_team(member, "Hijacked")
    assert Team.objects.get(pk=member.team.pk).name == old_name
    event = AuditEvent.objects.get(action="team.renamed")
    assert event.outcome == Outcome.DENIED
    assert event.details["role"] == role.value


# --- Views ---------------------------------------------------------------------------------------


def test_first_user_without_team_is_welcomed_to_create_one(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("team_create")
    page = client.get(reverse("team_create"))
    assert page.status_code == 200
    assert b"Welcome to Convai Admin" in page.content
    assert b"Name your team" in page.content


def test_user_with_teams_sees_plain_new_team_page(client: Client) -> None:
    member = MembershipFactory.create()
    client.force_login(member.user)
    page = client.get(reverse("team_create"))
    assert b"Welcome to Convai Admin" not in page.content
    assert b"New team" in page.content


def test_create_team_view_redirects_to_overview(client: Client) -> None:
    user = UserFactory.create()
    client.force_login(user)
    response = client.post(reverse("team_create"), {"name": "Harbor XR"})
    team = Team.objects.get(name="Harbor XR")
    assert response.status_code == 302
    assert response["Location"] == reverse("team_overview", args=[team.slug])
    page = client.get(response["Location"])
    assert b"Harbor XR" in page.content
    assert b"you are its Owner" in page.content


def test_create_team_requires_a_name(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.post(reverse("team_create"), {"name": "   "})
    assert response.status_code == 200
    assert not Team.objects.exists()
    assert response.context["form"].errors["name"]


def test_team_pages_send_anonymous_to_sign_in(client: Client) -> None:
    for name in ("team_create", "team_list", "team_switch"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_overview_shows_role_counts_and_links(client: Client) -> None:
    admin = MembershipFactory.create(role=Role.ADMIN)
    MembershipFactory.create_batch(2, team=admin.team, role=Role.VIEWER)
    services.create_invitation(
        MembershipFactory.create(team=admin.team, role=Role.OWNER), Role.EDITOR
    )
    client.force_login(admin.user)
    response = client.get(reverse("team_overview", args=[admin.team.slug]))
    assert response.status_code == 200
    assert response.context["member_count"] == 4
    assert response.context["pending_count"] == 1
    html = response.content.decode()
    assert admin.team.name in html
    assert "Pending invitations" in html
    assert "Invite people and manage Editors and Viewers" in html
    assert "Rename the team" not in html  # an Owner ability
    assert reverse("team_members", args=[admin.team.slug]) in html
    assert client.session["current_team_slug"] == admin.team.slug


def test_overview_hides_admin_information_from_viewers(client: Client) -> None:
    viewer = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(viewer.user)
    response = client.get(reverse("team_overview", args=[viewer.team.slug]))
    assert response.context["pending_count"] is None
    html = response.content.decode()
    assert "Pending invitations" not in html
    assert "Invite people" not in html
    assert "Ask an admin" in html


def test_settings_page_renames_team(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    url = reverse("team_settings", args=[owner.team.slug])
    response = client.post(url, {"name": "Renamed"}, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert b"The team is now called Renamed." in response.content
    assert Team.objects.get(pk=owner.team.pk).name == "Renamed"


def test_settings_rejects_blank_name(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(reverse("team_settings", args=[owner.team.slug]), {"name": ""})
    assert response.status_code == 200
    assert Team.objects.get(pk=owner.team.pk).name == owner.team.name


def test_team_list_shows_only_my_teams(client: Client) -> None:
    mine = MembershipFactory.create(role=Role.EDITOR)
    other = TeamFactory.create(name="Someone Else's")
    client.force_login(mine.user)
    html = client.get(reverse("team_list")).content.decode()
    assert mine.team.name in html
    assert other.name not in html


def test_switch_goes_to_my_team_and_hides_others(client: Client) -> None:
    first = MembershipFactory.create()
    second = MembershipFactory.create(user=first.user)
    stranger_team = TeamFactory.create()
    client.force_login(first.user)
    response = client.get(reverse("team_switch"), {"team": second.team.slug})
    assert response["Location"] == reverse("team_overview", args=[second.team.slug])
    assert client.get(reverse("team_switch"), {"team": stranger_team.slug}).status_code == 404
    assert client.get(reverse("team_switch"))["Location"] == reverse("team_list")


def test_home_returns_to_the_last_team(client: Client) -> None:
    first = MembershipFactory.create(team=TeamFactory.create(name="A team"))
    second = MembershipFactory.create(user=first.user, team=TeamFactory.create(name="B team"))
    client.force_login(first.user)
    client.get(reverse("team_overview", args=[second.team.slug]))
    assert client.get(reverse("home"))["Location"] == reverse(
        "team_overview", args=[second.team.slug]
    )
