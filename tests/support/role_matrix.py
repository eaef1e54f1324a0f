"""The role-by-view matrix, shared by every app's matrix test: every team-scoped endpoint
against every kind of visitor.

Data-driven: an app adds its views by building `Endpoint`s and parametrizing with
`matrix_params`, e.g.

    from tests.support.role_matrix import Endpoint, build_world, check_access, matrix_params

    ENDPOINTS = [Endpoint("characters:list", "get", "character.view")]

    @pytest.mark.django_db
    @pytest.mark.parametrize(("endpoint", "actor"), matrix_params(ENDPOINTS))
    def test_characters_matrix(client, endpoint, actor):
        check_access(client, build_world(), endpoint, actor)

`build_world(extend)` lets the caller attach its own objects (world.extra["character"] = ...)
so `url_kwargs` / `data` can point at them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from teams import policy
from teams.invitations import hash_token
from teams.models import Invitation, Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory
from tests.support.sign_in_limits import lock_out_account

ACTORS = ("anonymous", "outsider", "viewer", "editor", "admin", "owner")


@dataclass
class World:
    """One team with a member of every role, a target member and a pending invitation, and
    another team whose owner is the outsider."""

    team: Team
    other_team: Team
    members: dict[str, Membership]
    outsider: Membership
    target: Membership
    invitation: Invitation
    extra: dict[str, Any] = field(default_factory=dict)


def build_world(extend: Callable[[World], None] | None = None) -> World:
    team = TeamFactory.create()
    other_team = TeamFactory.create()
    members = {role.value: MembershipFactory.create(team=team, role=role) for role in Role}
    now = timezone.now()
    world = World(
        team=team,
        other_team=other_team,
        members=members,
        outsider=MembershipFactory.create(team=other_team, role=Role.OWNER),
        target=MembershipFactory.create(team=team, role=Role.VIEWER),
        invitation=Invitation.objects.create(
            team=team,
            role=Role.VIEWER,
            token_hash=hash_token(secrets.token_urlsafe(16)),
            created_by=members[Role.ADMIN].user,
            expires_at=now + timedelta(days=7),
        ),
    )
    # The target is locked out of sign-in, so that "Unlock sign-in" has something to undo.
    lock_out_account(world.target.user.username)
    if extend is not None:
        extend(world)
    return world


def _nothing(world: World) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Endpoint:
    """One team-scoped URL and method, the policy action its view is authorized by (the
    expected refusals are the policy's answer, never a role written here), and what an
    authorized request answers (200 page, or 302 after a POST)."""

    url_name: str
    method: str
    action: str
    url_kwargs: Callable[[World], dict[str, Any]] = _nothing
    data: Callable[[World], dict[str, Any]] = _nothing
    ok: tuple[int, ...] = (200,)
    htmx: bool = False
    # For refused requests: returns True when the request changed something it must not have.
    changed: Callable[[World], bool] | None = None

    def url(self, world: World) -> str:
        return reverse(
            self.url_name, kwargs={"team_slug": world.team.slug, **self.url_kwargs(world)}
        )

    def __str__(self) -> str:
        return f"{self.method.upper()}{' htmx' if self.htmx else ''} {self.url_name}"


def expected_statuses(endpoint: Endpoint, actor: str) -> tuple[int, ...]:
    if actor == "anonymous":
        # Sent to sign in; htmx is told to navigate there (HtmxRedirectMiddleware).
        return (204,) if endpoint.htmx else (302,)
    if actor == "outsider":
        return (404,)
    # The view's coarse check is the action's floor (targets are checked by the services).
    if not policy.at_least(Membership(role=actor), policy.floor(endpoint.action)):
        return (403,)
    return endpoint.ok


def matrix_params(endpoints: list[Endpoint]) -> list[Any]:
    return [
        pytest.param(endpoint, actor, id=f"{endpoint}-{actor}")
        for endpoint in endpoints
        for actor in ACTORS
    ]


def check_access(client: Client, world: World, endpoint: Endpoint, actor: str) -> HttpResponse:
    """Make the request as `actor` and assert the status the rules give; a refused request
    must change nothing."""
    if actor == "outsider":
        client.force_login(world.outsider.user)
    elif actor != "anonymous":
        client.force_login(world.members[actor].user)
    headers = {"HX-Request": "true"} if endpoint.htmx else {}
    send = getattr(client, endpoint.method)
    response: HttpResponse = send(endpoint.url(world), endpoint.data(world), headers=headers)
    expected = expected_statuses(endpoint, actor)
    assert response.status_code in expected, (
        f"{endpoint} as {actor}: got {response.status_code}, expected {expected}"
    )
    if actor == "anonymous":
        where = response["HX-Redirect"] if endpoint.htmx else response["Location"]
        assert where.startswith(reverse(settings.LOGIN_URL) + "?next=")
    if expected == (403,):
        # Refused at the floor, and recorded once there, named after the action.
        denied = list(AuditEvent.objects.filter(outcome=Outcome.DENIED))
        assert [(e.action, e.details.get("required")) for e in denied] == [
            (endpoint.action, policy.floor(endpoint.action).value)
        ], f"{endpoint} as {actor}: denial events {denied}"
    refused = expected != endpoint.ok
    if refused and endpoint.changed is not None:
        assert not endpoint.changed(world), f"{endpoint} as {actor} changed state"
    return response


TWO_FACTOR_GATE_TEXT = "requires two-factor"


def check_two_factor_gate(client: Client, world: World, endpoint: Endpoint) -> None:
    """The team requires two-factor and nobody has it: every member, whatever the role, gets
    only the page asking them to set it up (403), and nothing changes; an outsider still gets
    a 404 (the team does not exist for them)."""
    from allauth.mfa.models import Authenticator

    world.team.require_two_factor = True
    world.team.save(update_fields=["require_two_factor"])
    url = endpoint.url(world)
    data = endpoint.data(world)
    Authenticator.objects.all().delete()  # a data builder may have given someone two-factor
    headers = {"HX-Request": "true"} if endpoint.htmx else {}
    send = getattr(client, endpoint.method)
    for actor in ACTORS[2:]:
        client.force_login(world.members[actor].user)
        response: HttpResponse = send(url, data, headers=headers)
        assert response.status_code == 403, f"{endpoint} as {actor}: {response.status_code}"
        assert TWO_FACTOR_GATE_TEXT in response.content.decode(), f"{endpoint} as {actor}"
        if endpoint.url_name == "teams:settings-two-factor":
            world.team.refresh_from_db()
            assert world.team.require_two_factor, f"{endpoint} as {actor}"
        elif endpoint.changed is not None:
            assert not endpoint.changed(world), f"{endpoint} as {actor} changed state"
    client.force_login(world.outsider.user)
    assert send(url, data, headers=headers).status_code == 404
