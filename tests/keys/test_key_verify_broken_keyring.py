"""Verifying a stored key while the server's keyring is malformed (a deployment mistake that
only `manage.py check` reports) is a clear message on the page, not a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from keys.services import add_api_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_verify_with_a_malformed_keyring_explains(client: Client, settings) -> None:
    user = UserFactory.create()
    api_key = add_api_key(
        actor=user, label="Studio", raw_key="0123456789abcdef", skip_verification=True
    )
    settings.ENCRYPTION_KEYS = "not-a-keyring-entry"
    client.force_login(user)
    response = client.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    assert response.status_code == 200
    assert "can no longer be read on this server" in response.content.decode()
    assert "0123456789abcdef" not in response.content.decode()
