"""Helpers of the API key tests: a user, plain-SQL reads, clean logs (the leak check itself is
tests/support/secrets.py)."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import User
from keys.models import ApiKey
from tests.factories import UserFactory
from tests.support.secrets import assert_secret_absent

UNREACHABLE = "http://127.0.0.1:9/sandbox"  # nothing listens on the discard port


def new_user() -> User:
    user: User = UserFactory()  # type: ignore[assignment]
    return user


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
