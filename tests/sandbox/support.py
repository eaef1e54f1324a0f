"""Fixtures shared by the sandbox and client tests (imported by both conftest files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache

from convai.client import ConvaiClient
from sandbox.models import SandboxKey
from sandbox.services import create_sandbox_key, hash_key


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
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


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
