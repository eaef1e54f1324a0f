"""Reads are retried on 503/429/connection errors; writes never are (counted at the sandbox)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pytest_django.fixtures import Settings

from convai.client import ConvaiClient
from convai.errors import ConvaiRateLimitError, ConvaiUnavailableError
from sandbox import views
from sandbox.models import SandboxCharacter
from sandbox.services import set_fault
from tests.support.sandbox import hits

MakeClient = Callable[..., ConvaiClient]

READS = {
    "get": lambda c, char_id: c.get_character(char_id),
    "list": lambda c, char_id: c.list_characters(),
    "voices": lambda c, char_id: c.list_voices(),
    "languages": lambda c, char_id: c.list_languages(),
    "usage": lambda c, char_id: c.get_account_usage(),
}
WRITES = {
    "create": lambda c, char_id: c.create_character("R", "MALE", "B"),
    "update": lambda c, char_id: c.update_character(char_id, name="X"),
    "clone": lambda c, char_id: c.clone_character(char_id),
    "delete": lambda c, char_id: c.delete_character(char_id),
    # Minting is a write too: a retried connect would hand out a second live token.
    "connect": lambda c, char_id: c.connect(),
    "extend-token": lambda c, char_id: c.extend_token("a-token"),
    "revoke-token": lambda c, char_id: c.revoke_token("a-token"),
}


@pytest.fixture
def char_id(make_client: MakeClient, sandbox_key: str) -> str:
    return make_client(sandbox_key).create_character("Raymond", "MALE", "Backstory.")


@pytest.mark.parametrize("name", READS)
def test_reads_are_retried_on_503(
    make_client: MakeClient, sandbox_key: str, char_id: str, name: str
) -> None:
    set_fault(failure_rate=1.0)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiUnavailableError):
        READS[name](make_client(sandbox_key, read_retries=2), char_id)
    assert hits(sandbox_key) - before == 3


@pytest.mark.parametrize("name", WRITES)
def test_writes_are_never_retried(
    make_client: MakeClient, sandbox_key: str, char_id: str, name: str
) -> None:
    set_fault(failure_rate=1.0)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiUnavailableError):
        WRITES[name](make_client(sandbox_key, read_retries=2), char_id)
    assert hits(sandbox_key) - before == 1
    assert SandboxCharacter.objects.count() == 1


@pytest.mark.parametrize("name", WRITES)
def test_rate_limited_writes_are_not_retried(
    make_client: MakeClient, sandbox_key: str, char_id: str, name: str
) -> None:
    set_fault(rate_limit=True, retry_after=0)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiRateLimitError):
        WRITES[name](make_client(sandbox_key, read_retries=2), char_id)
    assert hits(sandbox_key) - before == 1


def test_a_read_succeeds_when_a_retry_gets_through(
    make_client: MakeClient, sandbox_key: str, char_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws: Iterator[float] = iter([0.0, 0.0, 0.99])
    monkeypatch.setattr(views.random, "random", lambda: next(draws))
    set_fault(failure_rate=0.5)
    before = hits(sandbox_key)
    details = make_client(sandbox_key, read_retries=2).get_character(char_id)
    assert details.character_id == char_id
    assert hits(sandbox_key) - before == 3


def test_429_on_a_read_is_retried_honouring_retry_after(
    make_client: MakeClient, sandbox_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("convai.client.time.sleep", waits.append)
    set_fault(rate_limit=True, retry_after=2)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiRateLimitError) as caught:
        make_client(sandbox_key, read_retries=2, backoff=10).list_characters()
    assert hits(sandbox_key) - before == 3
    assert waits == [2.0, 2.0]
    assert caught.value.retry_after == 2


def test_a_long_retry_after_is_not_waited_out(
    make_client: MakeClient, sandbox_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("convai.client.time.sleep", waits.append)
    set_fault(rate_limit=True, retry_after=60)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiRateLimitError) as caught:
        make_client(sandbox_key, read_retries=2).list_characters()
    assert hits(sandbox_key) - before == 1
    assert waits == []
    assert caught.value.retry_after == 60


def test_backoff_grows_between_read_retries(
    make_client: MakeClient, sandbox_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("convai.client.time.sleep", waits.append)
    set_fault(outage=True)
    with pytest.raises(ConvaiUnavailableError):
        make_client(sandbox_key, read_retries=3, backoff=1.0).list_characters()
    assert len(waits) == 3
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 3.0 and 4.0 <= waits[2] <= 5.0


def test_retry_count_comes_from_settings(
    make_client: MakeClient, sandbox_key: str, settings: Settings
) -> None:
    settings.CONVAI_READ_RETRIES = 0
    set_fault(outage=True)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiUnavailableError):
        make_client(sandbox_key).list_characters()
    assert hits(sandbox_key) - before == 1
