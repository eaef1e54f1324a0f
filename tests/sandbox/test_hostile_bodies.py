"""A body nested deeper than the JSON decoder recurses is just another unreadable body: the
documented error for missing fields, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from sandbox.services import create_sandbox_key

pytestmark = pytest.mark.django_db


def test_a_deeply_nested_body_is_refused_like_any_unreadable_one(client: Client) -> None:
    key = create_sandbox_key("hostile")
    body = "[" * 200_000 + "]" * 200_000
    response = client.post(
        "/sandbox/character/create",
        body,
        content_type="application/json",
        headers={"CONVAI-API-KEY": key},
    )
    assert response.status_code == 400
    assert "INTERNAL_ERROR" in response.json()
