"""The sandbox's short-lived tokens (api-notes.md, "Short-lived tokens"): `/user/connect` mints
one with a key, the token acts as its key on the other endpoints through `API-AUTH-TOKEN` until
it expires or is revoked, `/user/extend-token` renews it, faults apply as everywhere."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from sandbox import emulator
from sandbox.models import SandboxToken
from sandbox.services import create_sandbox_key, set_fault
from sandbox.services import hash_key as digest

pytestmark = pytest.mark.django_db


def _post(client: Client, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(
        f"/sandbox{path}", body or {}, content_type="application/json", headers=headers
    )


def _connect(client: Client, key: str) -> dict[str, Any]:
    response = _post(client, "/user/connect", **{"CONVAI-API-KEY": key})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_connect_mints_a_token_that_acts_as_its_key(client: Client) -> None:
    key = create_sandbox_key("game")
    body = _connect(client, key)
    assert set(body) == {"apiAuthToken", "expirationTime"}
    expires = timezone.datetime.fromisoformat(body["expirationTime"])
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)
    listed = _post(client, "/character/list", **{"API-AUTH-TOKEN": body["apiAuthToken"]})
    assert listed.status_code == 200
    usage = _post(client, "/user/user-api-usage", **{"API-AUTH-TOKEN": body["apiAuthToken"]})
    assert usage.status_code == 200
    # Only a hash is kept.
    assert not SandboxToken.objects.filter(token_hash=body["apiAuthToken"]).exists()
    assert SandboxToken.objects.filter(token_hash=digest(body["apiAuthToken"])).exists()


def test_minting_again_leaves_older_tokens_valid(client: Client) -> None:
    key = create_sandbox_key("game")
    first, second = _connect(client, key), _connect(client, key)
    assert first["apiAuthToken"] != second["apiAuthToken"]
    for body in (first, second):
        token = body["apiAuthToken"]
        assert _post(client, "/character/list", **{"API-AUTH-TOKEN": token}).status_code == 200


def test_an_expired_or_revoked_or_made_up_token_is_refused(client: Client) -> None:
    key = create_sandbox_key("game")
    expired, revoked = _connect(client, key)["apiAuthToken"], _connect(client, key)["apiAuthToken"]
    SandboxToken.objects.filter(token_hash=digest(expired)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    answer = _post(
        client, "/user/revoke-token", {"apiAuthToken": revoked}, **{"CONVAI-API-KEY": key}
    )
    assert answer.status_code == 200
    assert answer.json() == {"STATUS": "SUCCESS"}
    for token in (expired, revoked, "made-up"):
        refused = _post(client, "/character/list", **{"API-AUTH-TOKEN": token})
        assert refused.status_code == 401
        assert refused.json() == {"API_ERROR": emulator.INVALID_TOKEN}


def test_extend_gives_a_live_token_a_new_lifetime(client: Client) -> None:
    key = create_sandbox_key("game")
    token = _connect(client, key)["apiAuthToken"]
    SandboxToken.objects.filter(token_hash=digest(token)).update(
        expires_at=timezone.now() + timedelta(minutes=1)
    )
    answer = _post(client, "/user/extend-token", {"apiAuthToken": token}, **{"CONVAI-API-KEY": key})
    assert answer.status_code == 200
    expires = timezone.datetime.fromisoformat(answer.json()["expirationTime"])
    assert expires - timezone.now() > timedelta(minutes=59)


def test_tokens_cannot_mint_extend_or_revoke_and_other_accounts_cannot_touch_them(
    client: Client,
) -> None:
    key, stranger = create_sandbox_key("game"), create_sandbox_key("stranger")
    token = _connect(client, key)["apiAuthToken"]
    for path in ("/user/connect", "/user/extend-token", "/user/revoke-token"):
        refused = _post(client, path, {"apiAuthToken": token}, **{"API-AUTH-TOKEN": token})
        assert refused.status_code == 401
        assert refused.json() == {"API_ERROR": emulator.TOKEN_NEEDS_KEY}
    for path in ("/user/extend-token", "/user/revoke-token"):
        refused = _post(client, path, {"apiAuthToken": token}, **{"CONVAI-API-KEY": stranger})
        assert refused.status_code == 400
        assert refused.json() == {"ERROR": emulator.INVALID_TOKEN}
    assert _post(client, "/character/list", **{"API-AUTH-TOKEN": token}).status_code == 200


def test_faults_apply_to_the_token_endpoints_and_to_token_calls(client: Client) -> None:
    key = create_sandbox_key("game")
    token = _connect(client, key)["apiAuthToken"]
    set_fault(key_label="game", rate_limit=True, retry_after=7)
    for response in (
        _post(client, "/user/connect", **{"CONVAI-API-KEY": key}),
        _post(client, "/character/list", **{"API-AUTH-TOKEN": token}),
    ):
        assert response.status_code == 429
        assert response["Retry-After"] == "7"
    set_fault(outage=True)
    assert _post(client, "/user/connect", **{"CONVAI-API-KEY": key}).status_code == 503


def test_no_key_and_no_token_is_the_missing_key_error(client: Client) -> None:
    response = _post(client, "/user/connect")
    assert response.status_code == 401
    assert response.json() == {"API_ERROR": emulator.MISSING_KEY}
