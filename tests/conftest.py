from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.testcases import QuietWSGIRequestHandler

from convai.client import close_thread_session
from teams.models import Membership, Role, Team
from tests.factories import MembershipFactory, TeamFactory
from tests.support.database import uses_database

# For every test package: the sandbox fixtures (sandbox_url, sandbox_key, other_key,
# make_client), the character fixtures (add_key, editor, editor_key, create) and the stored
# facets check.
pytest_plugins = [
    "tests.support.sandbox",
    "tests.support.characters",
    "tests.support.facets",
    "tests.support.smtp",
]


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
    config.addinivalue_line(
        "markers",
        "stale_sign_in: force_login gives a session without a recent sign-in (re-auth asked)",
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(request: pytest.FixtureRequest, settings: Any) -> None:
    if request.node.get_closest_marker("argon2") is None:
        settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS


@pytest.fixture(autouse=True)
def _fresh_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """allauth keeps its rate-limit counters and used TOTP codes in the cache: one test's
    failed sign-ins must not count against the next test's. The cache is the database cache
    (a table no model owns, so a transactional test's flush leaves it), or Redis: cleared
    before each test that uses the database."""
    if uses_database(request):
        from django.core.cache import cache

        request.getfixturevalue("db")
        cache.clear()
    yield


@pytest.fixture(autouse=True)
def _force_login_is_a_recent_sign_in(request: pytest.FixtureRequest) -> Iterator[None]:
    """`client.force_login` stands for signing in through the form, which allauth records in
    the session; the steps behind re-authentication (adding a key, changing a role, exporting
    the audit log) accept a sign-in that recent. Tests of re-authentication itself mark
    themselves `stale_sign_in` and get a session without that record. (Patched by hand, not
    with `monkeypatch`: some tests call monkeypatch.undo().)"""
    if request.node.get_closest_marker("stale_sign_in") is not None:
        yield
        return
    import time
    from unittest import mock

    from allauth.account.internal.flows import login as login_flow
    from allauth.account.internal.userkit import user_id_to_str

    original = Client.force_login

    def force_login(self: Client, user: Any, backend: str | None = None) -> None:
        original(self, user, backend)
        session = self.session
        session[login_flow.AUTHENTICATION_METHODS_SESSION_KEY] = [
            {"method": "password", "at": time.time(), "username": user.get_username()}
        ]
        session[login_flow._AUTHENTICATION_METHODS_USER_SESSION_KEY] = user_id_to_str(user)
        session.save()

    with mock.patch.object(Client, "force_login", force_login):
        yield
