"""An archived team is read-only for everyone, Owners included: every team-scoped endpoint of
every app whose action changes something answers 403 with the archived message and changes
nothing; reading still works; unarchiving and deleting stay open to Owners (ARCHIVED_ALLOWS).

Driven by the role matrices' own endpoint lists, so a new endpoint is covered here as soon as
it is in its matrix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from teams import policy
from teams.models import Role, Team
from tests.characters.test_role_matrix import CHARACTER_ENDPOINTS, _with_character
from tests.support.role_matrix import Endpoint, World, build_world
from tests.teams.test_role_matrix import TEAM_ENDPOINTS
from tests.test_role_matrix_jobs_bundles_audit import ENDPOINTS as OTHER_ENDPOINTS
from tests.test_role_matrix_jobs_bundles_audit import _objects

pytestmark = pytest.mark.django_db

ALL: list[tuple[Endpoint, Callable[[World], None] | None]] = [
    *((e, None) for e in TEAM_ENDPOINTS),
    *((e, _with_character) for e in CHARACTER_ENDPOINTS),
    *((e, _objects) for e in OTHER_ENDPOINTS),
]


def _archived_world(extend: Callable[[World], None] | None) -> World:
    world = build_world(extend)
    Team.objects.filter(pk=world.team.pk).update(archived_at=timezone.now())
    return world


def _params(changing: bool) -> list[Any]:
    return [
        pytest.param(endpoint, extend, id=str(endpoint))
        for endpoint, extend in ALL
        if (endpoint.action not in policy.ARCHIVED_ALLOWS) == changing
    ]


@pytest.mark.parametrize(("endpoint", "extend"), _params(changing=True))
def test_every_change_is_refused_for_the_owner_and_changes_nothing(
    client: Client, endpoint: Endpoint, extend: Callable[[World], None] | None
) -> None:
    world = _archived_world(extend)
    client.force_login(world.members[Role.OWNER].user)
    headers = {"HX-Request": "true"} if endpoint.htmx else {}
    response = getattr(client, endpoint.method)(
        endpoint.url(world), endpoint.data(world), headers=headers
    )
    assert response.status_code == 403, f"{endpoint}: {response.status_code}"
    assert "is archived, so nothing in it can be changed" in response.content.decode()
    if endpoint.changed is not None and endpoint.url_name != "teams:archive":  # already is
        assert not endpoint.changed(world), f"{endpoint} changed an archived team"
    [denied] = AuditEvent.objects.filter(outcome=Outcome.DENIED)
    assert denied.action == endpoint.action
    assert denied.details["archived"] is True


@pytest.mark.parametrize(
    ("endpoint", "extend"),
    [p for p in _params(changing=False) if p.values[0].method == "get"],  # type: ignore[attr-defined]
)
def test_reading_still_works(
    client: Client, endpoint: Endpoint, extend: Callable[[World], None] | None
) -> None:
    world = _archived_world(extend)
    client.force_login(world.members[Role.VIEWER].user)
    if policy.floor(endpoint.action) != Role.VIEWER:
        client.force_login(world.members[Role.OWNER].user)
    headers = {"HX-Request": "true"} if endpoint.htmx else {}
    response = client.get(endpoint.url(world), headers=headers)
    assert response.status_code == 200, f"{endpoint}: {response.status_code}"


def test_services_refuse_too_not_only_views() -> None:
    """A view is not the only caller: the policy answers no to the service as well."""
    from teams import invitations

    world = _archived_world(None)
    owner = world.members[Role.OWNER]
    owner.team.refresh_from_db()
    with pytest.raises(policy.NotAllowed, match="is archived"):
        invitations.create_invitation(actor=owner, role=Role.VIEWER)
    assert not policy.Can(owner).invite
    assert policy.Can(owner).unarchive_team


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OWNER])
def test_every_team_page_shows_the_banner(client: Client, role: Role) -> None:
    world = _archived_world(None)
    client.force_login(world.members[role].user)
    for url_name in ("teams:overview", "teams:members", "characters:character-list"):
        endpoint = Endpoint(url_name, "get", "team.view")
        html = client.get(endpoint.url(world)).content.decode()
        assert "is archived: you can read everything, but nothing can be changed" in html
        if role == Role.OWNER:
            assert "You can unarchive it from" in html
        else:
            assert "Its Owners can unarchive it" in html
