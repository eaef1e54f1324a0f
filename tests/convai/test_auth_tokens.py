"""The client's short-lived token calls against the live sandbox: connect, extend, revoke;
errors classified like every call; the token never in a repr."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from convai.client import ConvaiClient
from convai.errors import ConvaiAuthError, ConvaiRateLimitError, ConvaiRequestError
from convai.types import AuthToken
from sandbox.services import set_fault

MakeClient = Callable[..., ConvaiClient]


def test_connect_extend_revoke(make_client: MakeClient, sandbox_key: str, sandbox_url: str) -> None:
    client = make_client(sandbox_key)
    minted = client.connect()
    assert minted.token and minted.token not in repr(minted)
    assert minted.expires_at is not None
    assert timedelta(minutes=59) < minted.expires_at - timezone.now() <= timedelta(hours=1)
    # The token works on the other endpoints: the game's side of the contract.
    as_game = requests.post(
        f"{sandbox_url}/character/list", headers={"API-AUTH-TOKEN": minted.token}, timeout=5
    )
    assert as_game.status_code == 200
    extended = client.extend_token(minted.token)
    assert extended.expires_at is not None and extended.expires_at >= minted.expires_at
    client.revoke_token(minted.token)
    with pytest.raises(ConvaiRequestError):
        client.extend_token(minted.token)


def test_errors_are_classified(make_client: MakeClient, sandbox_key: str) -> None:
    with pytest.raises(ConvaiAuthError):
        make_client("0" * 32).connect()
    with pytest.raises(ConvaiRequestError):
        make_client(sandbox_key).revoke_token("not-a-token")
    set_fault(rate_limit=True, retry_after=3)
    with pytest.raises(ConvaiRateLimitError) as caught:
        make_client(sandbox_key).connect()
    assert caught.value.retry_after == 3


def test_a_token_answer_is_read_tolerantly() -> None:
    assert AuthToken.from_payload({"apiAuthToken": "t"}).expires_at is None
    assert AuthToken.from_payload(
        {"apiAuthToken": "t", "expirationTime": "2030-01-01T00:00:00Z"}
    ).expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        AuthToken.from_payload({"expirationTime": "2030-01-01T00:00:00Z"})
