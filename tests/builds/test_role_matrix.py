"""Role-by-view matrix of the build pages: every member sees builds, Admins and Owners manage
them (teams.policy: build.view, build.manage); another team's owner gets 404; refused
requests change nothing. Another team's build under your own team's URL is 404 too."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from builds import credentials
from builds.models import Build
from keys.models import ApiKey
from teams.models import Role
from tests.factories import MembershipFactory, TeamFactory
from tests.support.role_matrix import Endpoint, World, build_world, check_access, matrix_params

pytestmark = pytest.mark.django_db


def _build_for(team: Any, owner: Any) -> Build:
    api_key = ApiKey.objects.create(
        owner=owner, label="Game key", last_four="abcd", verified_at=timezone.now()
    )
    credential = credentials.new_credential()
    return Build.objects.create(
        team=team,
        name="Demo build",
        api_key=api_key,
        credential_prefix=credential.prefix,
        credential_hash=credential.digest,
    )


def _objects(world: World) -> None:
    world.extra["build"] = _build_for(world.team, world.members[Role.ADMIN].user)


def _build(world: World) -> dict[str, Any]:
    return {"build_id": world.extra["build"].pk}


def _fresh(world: World) -> Build:
    return Build.objects.get(pk=world.extra["build"].pk)


def _settings(world: World) -> dict[str, Any]:
    return {
        "name": "Renamed",
        "api_key": world.extra["build"].api_key_id,
        "allowed_origins": "",
        "burst_per_minute": 30,
        "per_hour": 600,
    }


ENDPOINTS = [
    Endpoint("builds:build-list", "get", "build.view"),
    Endpoint("builds:build-list", "get", "build.view", htmx=True),
    Endpoint("builds:build-detail", "get", "build.view", url_kwargs=_build),
    Endpoint("builds:build-detail", "get", "build.view", url_kwargs=_build, htmx=True),
    Endpoint("builds:build-create", "get", "build.manage"),
    # An empty form: an allowed member sees the errors (200), nothing is made.
    Endpoint(
        "builds:build-create",
        "post",
        "build.manage",
        ok=(200,),
        changed=lambda w: Build.objects.count() != 1,
    ),
    Endpoint(
        "builds:build-update",
        "post",
        "build.manage",
        url_kwargs=_build,
        data=_settings,
        ok=(302,),
        changed=lambda w: _fresh(w).name != "Demo build",
    ),
    Endpoint("builds:build-rotate", "get", "build.manage", url_kwargs=_build),
    Endpoint("builds:build-rotate", "get", "build.manage", url_kwargs=_build, htmx=True),
    Endpoint(
        "builds:build-rotate",
        "post",
        "build.manage",
        url_kwargs=_build,
        data=lambda w: {"overlap": "24h"},
        changed=lambda w: _fresh(w).credential_prefix != w.extra["build"].credential_prefix,
    ),
    Endpoint("builds:build-revoke", "get", "build.manage", url_kwargs=_build),
    Endpoint(
        "builds:build-revoke",
        "post",
        "build.manage",
        url_kwargs=_build,
        ok=(302,),
        changed=lambda w: _fresh(w).revoked_at is not None,
    ),
]


@pytest.mark.parametrize(("endpoint", "actor"), matrix_params(ENDPOINTS))
def test_build_pages_matrix(client: Client, endpoint: Endpoint, actor: str) -> None:
    check_access(client, build_world(_objects), endpoint, actor)


@pytest.mark.parametrize("name", ["build-update", "build-rotate", "build-revoke"])
def test_another_teams_build_is_404_under_your_own_team(client: Client, name: str) -> None:
    mine, theirs = TeamFactory.create(), TeamFactory.create()
    owner = MembershipFactory.create(team=mine, role=Role.OWNER)
    stranger = MembershipFactory.create(team=theirs, role=Role.OWNER)
    build = _build_for(theirs, stranger.user)
    client.force_login(owner.user)
    detail = reverse("builds:build-detail", args=[mine.slug, build.pk])
    assert client.get(detail).status_code == 404
    assert client.get(reverse(f"builds:{name}", args=[mine.slug, build.pk])).status_code == 404
    assert client.post(reverse(f"builds:{name}", args=[mine.slug, build.pk])).status_code == 404
    assert Build.objects.get(pk=build.pk).revoked_at is None
