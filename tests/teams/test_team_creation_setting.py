"""TEAM_CREATION: "anyone" signed in may create a team, or only the install's "admins" (staff
and superusers). Where it is not allowed the action is not offered and the view refuses."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from teams import policy, services
from teams.models import Role, Team
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CREATE = reverse("teams:team-create")


@pytest.fixture
def admins_only(settings: Any) -> None:
    settings.TEAM_CREATION = "admins"


@pytest.mark.usefixtures("admins_only")
def test_a_non_admin_is_refused_and_nothing_is_created(client: Client) -> None:
    member = MembershipFactory.create(role=Role.OWNER)  # an Owner of a team, not of the install
    client.force_login(member.user)
    assert client.get(CREATE).status_code == 403
    response = client.post(CREATE, {"name": "Side project"})
    assert response.status_code == 403
    assert "only its administrators create teams" in response.content.decode()
    assert not Team.objects.filter(name="Side project").exists()
    denied = AuditEvent.objects.filter(action="team.created", outcome=Outcome.DENIED)
    assert denied.count() == 2 and all(e.team_id is None for e in denied)
    with pytest.raises(policy.NotAllowed):
        services.create_team(actor=member.user, name="Side project")


@pytest.mark.usefixtures("admins_only")
def test_the_create_action_is_hidden(client: Client) -> None:
    member = MembershipFactory.create(role=Role.OWNER)
    client.force_login(member.user)
    for url in (reverse("teams:team-list"), reverse("teams:overview", args=[member.team.slug])):
        html = client.get(url).content.decode()
        assert CREATE not in html, url


@pytest.mark.usefixtures("admins_only")
def test_someone_without_a_team_is_not_sent_to_a_refused_page(client: Client) -> None:
    client.force_login(UserFactory.create())
    home = client.get(reverse("teams:home"))
    assert home["Location"] == reverse("teams:team-list")
    html = client.get(home["Location"]).content.decode()
    assert "teams are created by its administrators" in html
    assert CREATE not in html


@pytest.mark.usefixtures("admins_only")
@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_install_admins_create_teams(client: Client, flag: str) -> None:
    user = UserFactory.create(**{flag: True})
    client.force_login(user)
    assert CREATE in client.get(reverse("teams:team-list")).content.decode()
    assert client.post(CREATE, {"name": "Northwind"}).status_code == 302
    assert Team.objects.filter(name="Northwind", memberships__user=user).exists()


def test_anyone_may_by_default(client: Client, settings: Any) -> None:
    assert settings.TEAM_CREATION == "anyone"
    client.force_login(UserFactory.create())
    assert client.post(CREATE, {"name": "Northwind"}).status_code == 302
