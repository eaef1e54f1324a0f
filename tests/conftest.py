from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.testcases import QuietWSGIRequestHandler

from convai.client import close_thread_session
from teams.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory

# For every test package: the sandbox fixtures (sandbox_url, sandbox_key, other_key,
# make_client), the character fixtures (add_key, editor, editor_key, create) and the stored
# facets check.
pytest_plugins = ["tests.support.sandbox", "tests.support.characters", "tests.support.facets"]


@pytest.fixture(scope="session", autouse=True)
def _live_server_without_nagle() -> None:
    """The live server writes headers and body in two sends; with Nagle's algorithm on, the
    body then waits for the client's delayed ACK (~40 ms a request). Production servers set
    TCP_NODELAY; so does this one, which makes every live-server test several times faster."""
    QuietWSGIRequestHandler.disable_nagle_algorithm = True


@pytest.fixture(autouse=True)
def _close_convai_connections() -> Iterator[None]:
    """The Convai client keeps keep-alive connections per thread. One must not outlive its
    test: the live server's connection threads share the test database connection, which is
    only allowed while the test runs (otherwise: "DatabaseWrapper objects created in a
    thread can only be used in that same thread" at the end of the session)."""
    yield
    close_thread_session()


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


# Argon2 is slow on purpose; hashing with it dominated the suite's time. Every test hashes with
# MD5 (fast, and never used outside tests) unless marked `@pytest.mark.argon2`: the tests that
# prove the production hashers opt back in.
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "argon2: hash passwords with the production hashers (Argon2), not MD5"
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(request: pytest.FixtureRequest, settings: Any) -> None:
    if request.node.get_closest_marker("argon2") is None:
        settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
