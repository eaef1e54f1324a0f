"""A character's name or backstory that arrived as invalid UTF-8 is a form error on the page,
the rest of the input kept, and nothing is sent to Convai."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from characters.models import Character
from teams.models import Membership
from tests.support.characters import Key, record_requests
from tests.support.forms import MULTIPART, UNREADABLE, multipart

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_with_raw_invalid_bytes_is_refused_and_nothing_reaches_convai(
    client: Client, editor: Membership, editor_key: Key, monkeypatch: Any
) -> None:
    client.force_login(editor.user)
    sent = record_requests(monkeypatch)
    response = client.post(
        reverse("characters:character-create", args=[editor.team.slug]),
        multipart(
            name=b"Caf\xe9 owner",  # latin-1 bytes in a UTF-8 form
            voice_type=b"MALE",
            backstory=b"Kept backstory.",
            api_key=str(editor_key.pk).encode(),
        ),
        content_type=MULTIPART,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert UNREADABLE in html
    assert "Kept backstory." in html
    assert not Character.objects.exists()
    assert not [path for path, _ in sent if path.startswith("/character/")]
