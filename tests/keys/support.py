"""Helpers shared by the API key tests: the leak checks and plain-SQL reads."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from accounts.models import User
from audit.models import AuditEvent
from keys.models import ApiKey
from tests.factories import UserFactory

UNREACHABLE = "http://127.0.0.1:9/sandbox"  # nothing listens on the discard port


def new_user() -> User:
    user: User = UserFactory()  # type: ignore[assignment]
    return user


def assert_secret_absent(text: str, secret: str) -> None:
    """Neither the key nor any 8-character run of it appears in `text`."""
    assert secret not in text
    for start in range(len(secret) - 7):
        assert secret[start : start + 8] not in text, "a run of the key leaked"


def audit_text() -> str:
    return json.dumps(
        [
            [e.action, e.target_id, e.target_label, e.actor_label, e.details]
            for e in AuditEvent.objects.all()
        ]
    )


def raw_column(api_key_id: object) -> tuple[str, str]:
    """Read the stored row with plain SQL, bypassing the ORM."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ciphertext, encryption_key_id FROM keys_apikey WHERE id = %s",
            [ApiKey._meta.pk.get_db_prep_value(api_key_id, connection)],
        )
        return cursor.fetchone()


def assert_logs_clean(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    assert_secret_absent(caplog.text, secret)
    for entry in caplog.records:
        assert_secret_absent(entry.getMessage(), secret)
        assert_secret_absent(repr(entry.args), secret)
