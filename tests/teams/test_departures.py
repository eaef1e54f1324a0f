"""A former member who opens a team URL is told "You no longer have access to <team>" (403,
with a way back); someone who never belonged gets the same 404 as for a team that does not
exist — same page, same number of queries — so nothing about the team leaks."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from teams import invitations, lifecycle, services
from teams.models import Departure, Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

CSRF = re.compile(r'("X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]*"')


def overview(slug: str) -> str:
    return reverse("teams:overview", kwargs={"team_slug": slug})


def members(slug: str) -> str:
    return reverse("teams:members", kwargs={"team_slug": slug})


@pytest.fixture
def owner(team: Team) -> Membership:
    return MembershipFactory.create(team=team, role=Role.OWNER)


def test_a_removed_member_is_told_they_no_longer_have_access(
    client: Client, team: Team, owner: Membership
) -> None:
    gone = MembershipFactory.create(team=team, role=Role.EDITOR)
    services.remove_member(actor=owner, membership_id=gone.pk)
    client.force_login(gone.user)
    for url in (overview(team.slug), members(team.slug)):
        response = client.get(url)
        assert response.status_code == 403
        html = response.content.decode()
        assert f'You no longer have access to <span dir="auto">{team.name}</span>' in html
        assert "You were removed from this team" in html
        assert f'href="{reverse("teams:home")}"' in html
        # Nothing of the team's present state: not its members, not its characters.
        assert owner.user.username not in html


def test_a_member_who_left_is_told_too(client: Client, team: Team, owner: Membership) -> None:
    leaver = MembershipFactory.create(team=team, role=Role.VIEWER)
    services.leave_team(actor=leaver)
    client.force_login(leaver.user)
    response = client.get(overview(team.slug))
    assert response.status_code == 403
    assert "You left this team" in response.content.decode()


def test_members_of_a_deleted_team_are_told_it_was_deleted(
    client: Client, team: Team, owner: Membership
) -> None:
    lifecycle.delete_team(actor=owner)
    client.force_login(owner.user)
    response = client.get(overview(team.slug))
    assert response.status_code == 403
    assert "The team was deleted on" in response.content.decode()


def test_someone_who_never_belonged_sees_the_same_404_as_for_no_team(
    client: Client, team: Team, owner: Membership, django_assert_num_queries
) -> None:
    """The existing team's 404 and a made-up slug's 404 are the same page at the same cost."""
    stranger = UserFactory.create()
    # A departure from another team must not count for this one.
    Departure.objects.create(team=TeamFactory.create(), user=stranger, reason="removed")
    client.force_login(stranger)
    client.get(overview("warm-up"))  # the session and the user are loaded once
    pages = []
    for slug in (team.slug, "no-such-team"):
        with django_assert_num_queries(5) as queries:
            response = client.get(overview(slug))
        assert response.status_code == 404
        pages.append(CSRF.sub(r"\1", response.content.decode()))
        assert len(queries.captured_queries) == 5
    assert pages[0] == pages[1]
    assert team.name not in pages[0]


def test_joining_again_ends_the_departure(client: Client, team: Team, owner: Membership) -> None:
    gone = MembershipFactory.create(team=team, role=Role.EDITOR)
    services.remove_member(actor=owner, membership_id=gone.pk)
    link = invitations.create_invitation(actor=owner, role=Role.VIEWER)
    invitations.accept_invitation(actor=gone.user, token=link.token)
    assert not Departure.objects.filter(team=team, user=gone.user).exists()
    client.force_login(gone.user)
    assert client.get(overview(team.slug)).status_code == 200
