"""Fixtures shared by the sandbox and client tests (imported by both conftest files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test.testcases import QuietWSGIRequestHandler

from characters.convai.client import ConvaiClient, close_thread_session
from sandbox.models import SandboxKey
from sandbox.services import create_sandbox_key, hash_key


@pytest.fixture(scope="session", autouse=True)
def _live_server_without_nagle() -> None:
    """The live server writes headers and body in two sends; with Nagle's algorithm on, the
    body then waits for the client's delayed ACK (~40 ms a request). A production server sets
    TCP_NODELAY; so does this one, which makes the HTTP tests several times faster."""
    QuietWSGIRequestHandler.disable_nagle_algorithm = True


@pytest.fixture
def sandbox_url(live_server: Any) -> Iterator[str]:
    yield f"{live_server.url}/sandbox"
    # Keep-alive connections must not outlive the test: the live server's connection threads
    # share the test database connection, which is only allowed while a test runs.
    close_thread_session()


@pytest.fixture
def sandbox_key(transactional_db: None) -> str:
    return create_sandbox_key("tests")


@pytest.fixture
def other_key(transactional_db: None) -> str:
    return create_sandbox_key("someone-else")


@pytest.fixture
def make_client(sandbox_url: str) -> Callable[..., ConvaiClient]:
    """A real client pointed at the live sandbox; no backoff so retries cost nothing."""

    def make(api_key: str, **options: Any) -> ConvaiClient:
        options.setdefault("backoff", 0)
        return ConvaiClient(api_key, base_url=sandbox_url, **options)

    return make


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def hits(raw_key: str) -> int:
    """How many requests the sandbox has seen from this key."""
    return SandboxKey.objects.get(key_hash=hash_key(raw_key)).request_count
