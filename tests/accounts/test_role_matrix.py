"""Role-by-view matrix: every team-scoped endpoint against every kind of visitor.

Data-driven and shared: another app adds its views by building `Endpoint`s and parametrizing
with `matrix_params`, e.g.

    from tests.accounts.test_role_matrix import Endpoint, build_world, check_access, matrix_params

    ENDPOINTS = [Endpoint("character_list", "get", Role.VIEWER)]

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

from accounts.models import ROLE_RANK, Invitation, Membership, Role, Team
from accounts.services import hash_token
from tests.factories import MembershipFactory, TeamFactory

ACTORS = ("anonymous", "outsider", "viewer", "editor", "admin", "owner")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Argon2 is deliberately slow; a world holds seven users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
    if extend is not None:
        extend(world)
    return world


def _nothing(world: World) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Endpoint:
    """One team-scoped URL and method, the smallest role that may use it, and what an
    authorized request answers (200 page, or 302 after a POST)."""

    url_name: str
    method: str
    min_role: str
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
        return (302,)
    if actor == "outsider":
        return (404,)
    if ROLE_RANK[Role(actor)] < ROLE_RANK[Role(endpoint.min_role)]:
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
        assert response["Location"].startswith(reverse(settings.LOGIN_URL) + "?next=")
    refused = expected != endpoint.ok
    if refused and endpoint.changed is not None:
        assert not endpoint.changed(world), f"{endpoint} as {actor} changed state"
    return response


# --- The accounts app's team-scoped endpoints ----------------------------------------------------


def _target(world: World) -> dict[str, Any]:
    return {"membership_id": world.target.pk}


def _invitation(world: World) -> dict[str, Any]:
    return {"invitation_id": world.invitation.pk}


def _target_gone(world: World) -> bool:
    return not Membership.objects.filter(pk=world.target.pk).exists()


def _target_role_changed(world: World) -> bool:
    return Membership.objects.get(pk=world.target.pk).role != Role.VIEWER


def _invitation_revoked(world: World) -> bool:
    return Invitation.objects.get(pk=world.invitation.pk).revoked_at is not None


def _renamed(world: World) -> bool:
    return Team.objects.get(pk=world.team.pk).name == "Renamed Studio"


def _invited(world: World) -> bool:
    return Invitation.objects.filter(team=world.team).count() > 1


TEAM_ENDPOINTS = [
    Endpoint("team_overview", "get", Role.VIEWER),
    Endpoint("team_members", "get", Role.VIEWER),
    Endpoint("team_settings", "get", Role.OWNER),
    Endpoint(
        "team_settings",
        "post",
        Role.OWNER,
        data=lambda w: {"name": "Renamed Studio"},
        ok=(302,),
        changed=_renamed,
    ),
    Endpoint("team_leave", "get", Role.VIEWER),
    Endpoint("team_leave", "get", Role.VIEWER, htmx=True),
    Endpoint("team_leave", "post", Role.VIEWER, ok=(302,)),
    Endpoint(
        "member_role",
        "post",
        Role.ADMIN,
        url_kwargs=_target,
        data=lambda w: {f"m{w.target.pk}-role": Role.EDITOR.value},
        ok=(302,),
        changed=_target_role_changed,
    ),
    Endpoint("member_remove", "get", Role.ADMIN, url_kwargs=_target),
    Endpoint("member_remove", "get", Role.ADMIN, url_kwargs=_target, htmx=True),
    Endpoint(
        "member_remove", "post", Role.ADMIN, url_kwargs=_target, ok=(302,), changed=_target_gone
    ),
    Endpoint("team_invitations", "get", Role.ADMIN),
    Endpoint("invitation_create", "get", Role.ADMIN),
    Endpoint(
        "invitation_create",
        "post",
        Role.ADMIN,
        data=lambda w: {"role": Role.VIEWER.value, "email": "new@example.test"},
        changed=_invited,
    ),
    Endpoint("invitation_revoke", "get", Role.ADMIN, url_kwargs=_invitation),
    Endpoint("invitation_revoke", "get", Role.ADMIN, url_kwargs=_invitation, htmx=True),
    Endpoint(
        "invitation_revoke",
        "post",
        Role.ADMIN,
        url_kwargs=_invitation,
        ok=(302,),
        changed=_invitation_revoked,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "actor"), matrix_params(TEAM_ENDPOINTS))
def test_team_endpoints_role_matrix(client: Client, endpoint: Endpoint, actor: str) -> None:
    check_access(client, build_world(), endpoint, actor)


def test_matrix_covers_every_team_scoped_accounts_url() -> None:
    """A new team-scoped URL in accounts must be added to the matrix."""
    from accounts import team_urls

    scoped = {p.name for p in team_urls.urlpatterns if "team_slug" in str(p.pattern)}
    assert scoped == {e.url_name for e in TEAM_ENDPOINTS}


@pytest.mark.django_db
def test_authorized_post_endpoints_take_effect(client: Client) -> None:
    """The matrix's refusals mean something only if the same request works for the right role."""
    for endpoint in TEAM_ENDPOINTS:
        if endpoint.changed is None:
            continue
        world = build_world()
        actor = Role.OWNER if endpoint.min_role == Role.OWNER else Role.ADMIN
        check_access(client, world, endpoint, actor)
        assert endpoint.changed(world), f"{endpoint} as {actor} did nothing"
        client.logout()
