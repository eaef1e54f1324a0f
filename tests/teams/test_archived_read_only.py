"""An archived team is read-only for everyone, Owners included: every team-scoped URL of every
app whose action changes something answers 403 with the archived message and changes nothing;
reading still works; unarchiving and deleting stay open to Owners (ARCHIVED_ALLOWS).

Driven by the URLconf itself (each team view carries its policy action, `team_action`), so a
URL added by any app is covered here the day it is added."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from builds.credentials import new_credential
from builds.models import Build
from characters.models import Character
from jobs.models import Job
from keys.models import ApiKey
from teams import policy
from teams.models import Invitation, Membership, Role, Team
from tests.factories import CharacterFactory
from tests.support.role_matrix import World, build_world

pytestmark = pytest.mark.django_db


def _team_urls() -> Iterator[tuple[str, str, list[str]]]:
    """(URL name, policy action, other parameters) of every URL under /t/<team_slug>/."""

    def walk(patterns: list[Any], route: str, namespace: str) -> Iterator[Any]:
        for pattern in patterns:
            full = route + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                yield from walk(pattern.url_patterns, full, inner or namespace)
            elif isinstance(pattern, URLPattern) and "<slug:team_slug>" in full:
                action = getattr(pattern.callback, "team_action", None)
                assert action is not None, f"{pattern.name} is not a team_view"
                params = [p for p in re.findall(r"<(?:\w+:)?(\w+)>", full) if p != "team_slug"]
                yield f"{namespace}:{pattern.name}", action, params

    yield from walk(get_resolver().url_patterns, "", "")


TEAM_URLS = sorted((name, action) for name, action, _params in _team_urls())
PARAMS = {name: params for name, _action, params in _team_urls()}


def _archived_world() -> World:
    def extend(world: World) -> None:
        owner = world.members[Role.OWNER]
        key = ApiKey.objects.create(owner=owner.user, label="Key", last_four="abcd", ciphertext="")
        world.extra["character"] = CharacterFactory.create(
            team=world.team, bound_key=key, created_by=owner.user
        )
        world.extra["job"] = Job.objects.create(
            team=world.team, kind="import_all", scope=f"key:{key.pk}", created_by=owner.user
        )
        credential = new_credential()
        world.extra["build"] = Build.objects.create(
            team=world.team,
            name="Build",
            api_key=key,
            credential_prefix=credential.prefix,
            credential_hash=credential.digest,
        )

    world = build_world(extend)
    Team.objects.filter(pk=world.team.pk).update(archived_at=timezone.now())
    return world


def _url(name: str, world: World) -> str:
    """The URL with the world's objects as its IDs (refused or not, the view gets real ones)."""
    known = {
        "membership_id": world.target.pk,
        "invitation_id": world.invitation.pk,
        "character_id": world.extra["character"].pk,
        "job_id": world.extra["job"].pk,
        "build_id": world.extra["build"].pk,
        "number": 1,
        "operation_id": 1,
        "event_id": 1,
        "token": "x",
    }
    kwargs = {param: known[param] for param in PARAMS[name]}
    return reverse(name, kwargs={"team_slug": world.team.slug, **kwargs})


def _state() -> list[Any]:
    """Everything a refused request could have changed."""
    models: list[type[Model]] = [Team, Membership, Invitation, Character, Job, ApiKey, Build]
    return [list(model.objects.order_by("pk").values()) for model in models] + [
        AuditEvent.objects.exclude(outcome=Outcome.DENIED).count()
    ]


@pytest.mark.parametrize(
    ("name", "action"),
    [pytest.param(n, a, id=n) for n, a in TEAM_URLS if a not in policy.ARCHIVED_ALLOWS],
)
def test_every_change_is_refused_for_the_owner_and_changes_nothing(
    client: Client, name: str, action: str
) -> None:
    world = _archived_world()
    client.force_login(world.members[Role.OWNER].user)
    before = _state()
    url = _url(name, world)
    answers = {method: getattr(client, method)(url, {}) for method in ("get", "post")}
    statuses = {method: response.status_code for method, response in answers.items()}
    assert set(statuses.values()) <= {403, 405} and 403 in statuses.values(), statuses
    for response in answers.values():
        if response.status_code == 403:
            assert "is archived, so nothing in it can be changed" in response.content.decode()
    assert _state() == before
    denied = AuditEvent.objects.filter(outcome=Outcome.DENIED)
    assert {e.action for e in denied} == {action}
    assert all(e.details["archived"] is True for e in denied)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, id=n)
        for n, a in TEAM_URLS
        if a in policy.ARCHIVED_ALLOWS and a.endswith((".view", ".review", ".settings"))
    ],
)
def test_reading_still_works(client: Client, name: str) -> None:
    world = _archived_world()
    client.force_login(world.members[Role.OWNER].user)
    response = client.get(_url(name, world))
    # Not refused (403); a page of a made-up ID is a 404, a POST-only check a 405.
    assert response.status_code in (200, 404, 405), f"{name}: {response.status_code}"
    if response.status_code == 200:
        assert "is archived: you can read everything" in response.content.decode()


def test_services_refuse_too_not_only_views() -> None:
    """A view is not the only caller: the policy answers no to the service as well."""
    from teams import invitations

    world = _archived_world()
    owner = world.members[Role.OWNER]
    owner.team.refresh_from_db()
    with pytest.raises(policy.NotAllowed, match="is archived"):
        invitations.create_invitation(actor=owner, role=Role.VIEWER)
    assert not policy.Can(owner).invite
    assert policy.Can(owner).unarchive_team


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OWNER])
def test_every_team_page_shows_the_banner(client: Client, role: Role) -> None:
    world = _archived_world()
    client.force_login(world.members[role].user)
    for url_name in ("teams:overview", "teams:members", "characters:character-list"):
        html = client.get(reverse(url_name, args=[world.team.slug])).content.decode()
        assert "is archived: you can read everything, but nothing can be changed" in html
        if role == Role.OWNER:
            assert "You can unarchive it from" in html
        else:
            assert "Its Owners can unarchive it" in html
