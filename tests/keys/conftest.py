"""Fixtures of the API key tests: the live sandbox as Convai, a signed-in member."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from accounts.models import User
from sandbox.services import create_sandbox_key
from tests.keys.support import new_user


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every logger at DEBUG, including ones configured at a higher level."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


@pytest.fixture
def sandbox_key(sandbox: str) -> str:
    return create_sandbox_key("api-keys-test")


@pytest.fixture
def user(db: None) -> User:
    return new_user()


@pytest.fixture
def member(client: Client, user: User) -> Client:
    client.force_login(user)
    return client
