"""The live sandbox as Convai, for every test package (tests/conftest.py registers this module
as a plugin): `sandbox` points the product at it, `sandbox_url`/`make_client` give a real
client of it, `sandbox_key`/`other_key` are keys of it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.servers.basehttp import ThreadedWSGIServer

from convai.client import ConvaiClient, close_thread_session
from sandbox.models import SandboxKey
from sandbox.services import clear_faults, create_sandbox_key, hash_key


@pytest.fixture
def sandbox(live_server: Any, settings: Any, transactional_db: None) -> Iterator[str]:
    """The dashboard talks to the sandbox on the live server, over real HTTP, with no backoff
    between read retries. Afterwards: no fault left set, and no keep-alive connection kept
    (the live server's threads share the test database connection only while a test runs)."""
    settings.CONVAI_API_BASE_URL = f"{live_server.url}/sandbox"
    settings.CONVAI_RETRY_BACKOFF = 0
    yield str(settings.CONVAI_API_BASE_URL)
    clear_faults(everything=True)
    close_thread_session()


@pytest.fixture
def sandbox_url(live_server: Any) -> str:
    return f"{live_server.url}/sandbox"


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
def _empty_cache(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[None]:
    """Every test starts with an empty cache. The cache is the database's (settings.CACHES):
    a test in a transaction has what it cached rolled back with it, but a transactional test
    (a live server) commits, and the flush after it leaves the cache table alone: emptied
    here after such a test."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if {"transactional_db", "live_server"} & set(request.fixturenames) or (
        marker is not None and marker.kwargs.get("transaction")
    ):
        with django_db_blocker.unblock():
            cache.clear()


class _LiveConnections:
    """How many connections the live server is serving right now (one thread each)."""

    def __init__(self) -> None:
        self.open = 0
        self.changed = threading.Condition()

    def counted(self, serve: Callable[..., None]) -> Callable[..., None]:
        def serve_counted(server: Any, request: Any, client_address: Any) -> None:
            with self.changed:
                self.open += 1
            try:
                serve(server, request, client_address)
            finally:
                with self.changed:
                    self.open -= 1
                    self.changed.notify_all()

        return serve_counted


_live_connections = _LiveConnections()


@pytest.fixture(scope="session", autouse=True)
def _count_live_connections() -> Iterator[None]:
    """Count the live server's connection threads (its daemon threads are tracked nowhere
    else), for wait_for_live_server."""
    serve = ThreadedWSGIServer.process_request_thread
    ThreadedWSGIServer.process_request_thread = _live_connections.counted(serve)  # type: ignore[method-assign]
    yield
    ThreadedWSGIServer.process_request_thread = serve  # type: ignore[method-assign]


def wait_for_live_server(timeout: float = 10.0) -> None:
    """Return once the live server has finished every connection (or fail after `timeout`
    seconds). A call that timed out on the client side is still being answered on the
    server's side; that thread must be done before the test's database is flushed.

    The calling thread's keep-alive connections are closed first (and dropped ones
    collected), so no server thread is left waiting on an idle connection."""
    close_thread_session()
    gc.collect()
    with _live_connections.changed:
        done = _live_connections.changed.wait_for(lambda: _live_connections.open == 0, timeout)
    assert done, f"the live server still serves {_live_connections.open} connection(s)"


def hits(raw_key: str) -> int:
    """How many requests the sandbox has seen from this key."""
    return SandboxKey.objects.get(key_hash=hash_key(raw_key)).request_count


def _authenticate_read_only(raw_key: str) -> SandboxKey | None:
    if not raw_key:
        return None
    return SandboxKey.objects.select_related("account").filter(key_hash=hash_key(raw_key)).first()


@pytest.fixture
def sandbox_without_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only, for tests where a background job writes while the live sandbox answers: the
    live server's threads have their own connections to the in-memory test database, and
    SQLite's shared cache answers a second writer "table is locked" at once instead of
    waiting (a database file waits). The sandbox's request and quota counters are the only
    writes of its reads, so they are switched off here; nothing these tests assert uses them."""
    from sandbox import services as sandbox_services

    monkeypatch.setattr(sandbox_services, "count_core_api_call", lambda key: None)
    monkeypatch.setattr(sandbox_services, "authenticate", _authenticate_read_only)
