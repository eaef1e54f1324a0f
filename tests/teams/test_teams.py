"""Creating, renaming, listing and switching teams; the team overview page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from teams import invitations, policy, services
from teams.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- Services ------------------------------------------------------------------------------------


def test_create_team_makes_the_creator_owner_and_records_it() -> None:
    user = UserFactory.create()
    team = services.create_team(actor=user, name="  Northwind   Games ")
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
    first = services.create_team(actor=user, name="Blue Whale")
    second = services.create_team(actor=user, name="Blue whale!")
    third = services.create_team(actor=user, name="Blue-Whale")
    assert [first.slug, second.slug, third.slug] == ["blue-whale", "blue-whale-2", "blue-whale-3"]
    assert services.create_team(actor=user, name="!!!").slug == "team"
    assert len(services.create_team(actor=user, name="x" * 100).slug) <= 50
    long_again = services.create_team(actor=user, name="x" * 100)
    assert long_again.slug.endswith("-2")
    assert len(long_again.slug) <= 50


def test_owner_renames_team_slug_stays_and_change_is_audited() -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    old_name, slug = owner.team.name, owner.team.slug
    services.rename_team(actor=owner, name="New Name")
    team = Team.objects.get(pk=owner.team.pk)
    assert (team.name, team.slug) == ("New Name", slug)
    event = AuditEvent.objects.get(action="team.renamed")
    assert event.details == {"name": [old_name, "New Name"]}


def test_renaming_to_the_same_name_records_nothing() -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    services.rename_team(actor=owner, name=owner.team.name)
    assert not AuditEvent.objects.filter(action="team.renamed").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.EDITOR, Role.VIEWER])
def test_only_owner_renames_and_refusal_is_audited(role: Role) -> None:
    member = MembershipFactory.create(role=role)
    old_name = member.team.name
    with pytest.raises(policy.NotAllowed):
        services.rename_team(actor=member, name="Hijacked")
    assert Team.objects.get(pk=member.team.pk).name == old_name
    event = AuditEvent.objects.get()  # the refusal, recorded once
    assert (event.action, event.outcome) == ("team.renamed", Outcome.DENIED)
    assert event.details["role"] == role.value
    assert event.details["required"] == "owner"


# --- Views ---------------------------------------------------------------------------------------


def test_first_user_without_team_is_welcomed_to_create_one(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get(reverse("teams:home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("teams:team-create")
    page = client.get(reverse("teams:team-create"))
    assert page.status_code == 200
    assert b"Welcome to Convai Admin" in page.content
    assert b"Name your team" in page.content


def test_user_with_teams_sees_plain_new_team_page(client: Client) -> None:
    member = MembershipFactory.create()
    client.force_login(member.user)
    page = client.get(reverse("teams:team-create"))
    assert b"Welcome to Convai Admin" not in page.content
    assert b"New team" in page.content


def test_create_team_view_redirects_to_overview(client: Client) -> None:
    user = UserFactory.create()
    client.force_login(user)
    response = client.post(reverse("teams:team-create"), {"name": "Harbor XR"})
    team = Team.objects.get(name="Harbor XR")
    assert response.status_code == 302
    assert response["Location"] == reverse("teams:overview", args=[team.slug])
    page = client.get(response["Location"])
    assert b"Harbor XR" in page.content
    assert b"you are its Owner" in page.content


def test_create_team_requires_a_name(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.post(reverse("teams:team-create"), {"name": "   "})
    assert response.status_code == 200
    assert not Team.objects.exists()
    assert response.context["form"].errors["name"]


def test_team_pages_send_anonymous_to_sign_in(client: Client) -> None:
    for name in ("teams:team-create", "teams:team-list", "teams:team-switch"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_overview_shows_role_counts_and_links(client: Client) -> None:
    admin = MembershipFactory.create(role=Role.ADMIN)
    MembershipFactory.create_batch(2, team=admin.team, role=Role.VIEWER)
    invitations.create_invitation(
        actor=MembershipFactory.create(team=admin.team, role=Role.OWNER), role=Role.EDITOR
    )
    client.force_login(admin.user)
    response = client.get(reverse("teams:overview", args=[admin.team.slug]))
    assert response.status_code == 200
    assert response.context["member_count"] == 4
    assert response.context["pending_count"] == 1
    html = response.content.decode()
    assert admin.team.name in html
    assert "Pending invitations" in html
    assert "Invite people and manage Editors and Viewers" in html
    assert "Rename the team" not in html  # an Owner ability
    assert reverse("teams:members", args=[admin.team.slug]) in html
    assert client.session["current_team_slug"] == admin.team.slug


def test_overview_hides_admin_information_from_viewers(client: Client) -> None:
    viewer = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(viewer.user)
    response = client.get(reverse("teams:overview", args=[viewer.team.slug]))
    assert response.context["pending_count"] is None
    html = response.content.decode()
    assert "Pending invitations" not in html
    assert "Invite people" not in html
    assert "Ask an admin" in html


def test_settings_page_renames_team(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    url = reverse("teams:settings", args=[owner.team.slug])
    response = client.post(url, {"name": "Renamed"}, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert b"The team is now called Renamed." in response.content
    assert Team.objects.get(pk=owner.team.pk).name == "Renamed"


def test_settings_rejects_blank_name(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(reverse("teams:settings", args=[owner.team.slug]), {"name": ""})
    assert response.status_code == 200
    assert Team.objects.get(pk=owner.team.pk).name == owner.team.name


def test_team_list_shows_only_my_teams(client: Client) -> None:
    mine = MembershipFactory.create(role=Role.EDITOR)
    other = TeamFactory.create(name="Someone Else's")
    client.force_login(mine.user)
    html = client.get(reverse("teams:team-list")).content.decode()
    assert mine.team.name in html
    assert other.name not in html


def test_switch_goes_to_my_team_and_hides_others(client: Client) -> None:
    first = MembershipFactory.create()
    second = MembershipFactory.create(user=first.user)
    stranger_team = TeamFactory.create()
    client.force_login(first.user)
    response = client.get(reverse("teams:team-switch"), {"team": second.team.slug})
    assert response["Location"] == reverse("teams:overview", args=[second.team.slug])
    assert client.get(reverse("teams:team-switch"), {"team": stranger_team.slug}).status_code == 404
    assert client.get(reverse("teams:team-switch"))["Location"] == reverse("teams:team-list")


def test_home_returns_to_the_last_team(client: Client) -> None:
    first = MembershipFactory.create(team=TeamFactory.create(name="A team"))
    second = MembershipFactory.create(user=first.user, team=TeamFactory.create(name="B team"))
    client.force_login(first.user)
    client.get(reverse("teams:overview", args=[second.team.slug]))
    assert client.get(reverse("teams:home"))["Location"] == reverse(
        "teams:overview", args=[second.team.slug]
    )


# --- The team switcher ----------------------------------------------------------------------------


def _switch(client: Client, team: Team, referer: str | None = None):
    headers = {"Referer": f"http://testserver{referer}"} if referer else {}
    return client.get(reverse("teams:team-switch"), {"team": team.slug}, headers=headers)


def test_the_switcher_links_every_team_and_all_your_teams(client: Client) -> None:
    first = MembershipFactory.create(team=TeamFactory.create(name="A team"))
    second = MembershipFactory.create(user=first.user, team=TeamFactory.create(name="B team"))
    client.force_login(first.user)
    html = client.get(reverse("teams:overview", args=[first.team.slug])).content.decode()
    switcher = html.split('class="team-switcher"', 1)[1].split("</details>", 1)[0]
    assert f'href="{reverse("teams:team-list")}"' in switcher
    assert "All your teams" in switcher
    for membership in (first, second):
        link = f"{reverse('teams:team-switch')}?team={membership.team.slug}"
        assert f'href="{link}"' in switcher


def test_switching_from_a_members_page_lands_on_the_other_teams_members_page(
    client: Client,
) -> None:
    first = MembershipFactory.create(role=Role.VIEWER)
    second = MembershipFactory.create(user=first.user, role=Role.VIEWER)
    client.force_login(first.user)
    response = _switch(client, second.team, reverse("teams:members", args=[first.team.slug]))
    assert response["Location"] == reverse("teams:members", args=[second.team.slug])
    assert client.get(response["Location"]).status_code == 200


def test_switching_from_a_page_with_an_id_lands_on_the_overview(client: Client) -> None:
    first = MembershipFactory.create(role=Role.OWNER)
    second = MembershipFactory.create(user=first.user, role=Role.OWNER)
    other = MembershipFactory.create(team=first.team, role=Role.VIEWER)
    client.force_login(first.user)
    page = reverse("teams:member-remove", args=[first.team.slug, other.pk])
    response = _switch(client, second.team, page)
    assert response["Location"] == reverse("teams:overview", args=[second.team.slug])


@pytest.mark.parametrize(
    "referer",
    [None, "/account/api-keys/", "/no/such/page/", "/teams/"],
)
def test_switching_from_elsewhere_lands_on_the_overview(client: Client, referer) -> None:
    first = MembershipFactory.create()
    second = MembershipFactory.create(user=first.user)
    client.force_login(first.user)
    response = _switch(client, second.team, referer)
    assert response["Location"] == reverse("teams:overview", args=[second.team.slug])


def test_switching_to_a_page_ones_role_there_cannot_see_lands_on_the_overview(
    client: Client,
) -> None:
    """An Owner of A on A's settings switches to B, where they are a Viewer: not a 403."""
    first = MembershipFactory.create(role=Role.OWNER)
    second = MembershipFactory.create(user=first.user, role=Role.VIEWER)
    client.force_login(first.user)
    response = _switch(client, second.team, reverse("teams:settings", args=[first.team.slug]))
    assert response["Location"] == reverse("teams:overview", args=[second.team.slug])
    assert not AuditEvent.objects.filter(outcome=Outcome.DENIED).exists()
