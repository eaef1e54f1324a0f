"""The sandbox must be unreachable unless CONVAI_SANDBOX is on, decided per request."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from sandbox.models import SandboxKey
from sandbox.services import create_sandbox_key

ENDPOINTS = [
    ("post", "/sandbox/character/create"),
    ("post", "/sandbox/character/update"),
    ("post", "/sandbox/character/get"),
    ("post", "/sandbox/user/clone_character"),
    ("post", "/sandbox/character/delete"),
    ("post", "/sandbox/character/list"),
    ("get", "/sandbox/tts/get_available_voices"),
    ("get", "/sandbox/tts/get_available_languages"),
    ("post", "/sandbox/user/user-api-usage"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_is_404_when_the_sandbox_is_off(
    client: Client, method: str, path: str
) -> None:
    key = create_sandbox_key("off")
    with override_settings(CONVAI_SANDBOX=False):
        response = getattr(client, method)(
            path, data={}, content_type="application/json", headers={"CONVAI-API-KEY": key}
        )
    assert response.status_code == 404
    assert b"api_key" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_the_same_request_answers_when_the_sandbox_is_on(
    client: Client, method: str, path: str
) -> None:
    key = create_sandbox_key("on")
    with override_settings(CONVAI_SANDBOX=True):
        response = getattr(client, method)(
            path, data={}, content_type="application/json", headers={"CONVAI-API-KEY": key}
        )
    assert response.status_code in {200, 201, 400}
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_no_request_is_counted_while_off(client: Client) -> None:
    key = create_sandbox_key("off")
    with override_settings(CONVAI_SANDBOX=False):
        client.post("/sandbox/character/list", headers={"CONVAI-API-KEY": key})
    assert SandboxKey.objects.get().request_count == 0
