"""Fixtures for the build tests: a team with an Admin whose verified key lives in the sandbox
(over real HTTP), a build registered through the service, and `game`, a client of the token
endpoint that behaves like Convai's SDKs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from builds import services
from builds.models import PlayerAuth
from teams.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import Key

CREDENTIAL_HEADER = "X-Convai-Admin-Build"
WEBGL_ORIGIN = "https://play.example.com"


@pytest.fixture
def team(transactional_db: None) -> Team:
    return TeamFactory.create(name="Studio", slug="studio")


@pytest.fixture
def admin(team: Team) -> Membership:
    return MembershipFactory.create(team=team, role=Role.ADMIN)


@pytest.fixture
def admin_key(add_key: Callable[..., Key], admin: Membership) -> Key:
    return add_key(admin, "Game key")


@pytest.fixture
def register(admin: Membership, admin_key: Key) -> Callable[..., services.Issued]:
    """register(**settings) -> Issued, through the service as the Admin."""

    def make(actor: Membership | None = None, **overrides: Any) -> services.Issued:
        values: dict[str, Any] = {
            "name": "Demo build",
            "api_key_id": admin_key.pk,
            "allowed_origins": [WEBGL_ORIGIN],
            "burst_per_minute": 30,
            "per_hour": 600,
            "expires_at": None,
            "player_auth": PlayerAuth.NONE,
            "player_public_key": "",
        }
        values.update(overrides)
        return services.register_build(
            actor=actor or admin, settings_=services.BuildSettings(**values)
        )

    return make


@pytest.fixture
def issued(register: Callable[..., services.Issued]) -> services.Issued:
    return register()
