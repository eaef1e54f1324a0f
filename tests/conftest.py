from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory


@pytest.fixture
def team(db: None) -> Team:
    return TeamFactory()


@pytest.fixture
def make_member(team: Team) -> Callable[..., Membership]:
    """make_member(role, team=None) -> Membership of a new user."""

    def make(role: str = Role.EDITOR, team_: Team | None = None) -> Membership:
        return MembershipFactory(team=team_ or team, role=role)

    return make


@pytest.fixture
def login(client: Client) -> Callable[[Membership], Client]:
    def do(membership: Membership) -> Client:
        client.force_login(membership.user)
        return client

    return do
