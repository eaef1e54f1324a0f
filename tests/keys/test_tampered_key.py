"""Security finding 3: a stored key whose ciphertext was altered, or copied from another row,
is not "a missing encryption key". Verifying it says what happened, warns the administrator in
the log, and leaves a failed `api_key.verified` event; the key is never used."""

from __future__ import annotations

import base64
import logging
import secrets

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent, Outcome
from keys.models import ApiKey
from keys.services import add_api_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ALTERED = "was altered or does not belong to this record"
MISSING = "encryption key is missing"
LOGGER = "convai_admin.keys"


def store(user: User, label: str = "Studio") -> ApiKey:
    return add_api_key(
        actor=user, label=label, raw_key=secrets.token_hex(16), skip_verification=True
    )


def write_ciphertext(api_key: ApiKey, value: str) -> None:
    """Someone with database access writes the column directly, bypassing the application."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ApiKey._meta.db_table} SET ciphertext = %s WHERE id = %s",
            [value, ApiKey._meta.pk.get_db_prep_value(api_key.pk, connection)],
        )


def flip_a_byte(value: str) -> str:
    version, key_id, payload = value.split(":", 2)
    blob = bytearray(base64.b64decode(payload))
    blob[len(blob) // 2] ^= 0x01
    return f"{version}:{key_id}:{base64.b64encode(bytes(blob)).decode()}"


def verify(client: Client, api_key: ApiKey) -> str:
    response = client.post(reverse("keys:verify", args=[api_key.pk]), follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def user() -> User:
    user: User = UserFactory.create()
    return user


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.mark.parametrize("tamper", ["altered", "transplanted", "garbage"])
def test_a_tampered_ciphertext_is_reported_logged_and_audited(
    signed_in: Client, user: User, caplog: pytest.LogCaptureFixture, tamper: str
) -> None:
    api_key = store(user)
    if tamper == "altered":
        write_ciphertext(api_key, flip_a_byte(api_key.ciphertext))
    elif tamper == "transplanted":
        # A valid ciphertext, but of another member's key: it must not open in this row.
        theirs = store(UserFactory.create(), label="Theirs")
        write_ciphertext(api_key, theirs.ciphertext)
    else:
        write_ciphertext(api_key, "v1:" + "x" * 40)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    page = verify(signed_in, api_key)

    assert ALTERED in page
    assert MISSING not in page
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(api_key.pk) in warnings[0].getMessage()
    event = AuditEvent.objects.get(action="api_key.verified")
    assert (event.outcome, event.actor, event.target_id) == (
        Outcome.FAILURE,
        user,
        str(api_key.pk),
    )
    assert event.details["reason"] == "stored value altered"
    assert event.details["last_four"] == api_key.last_four
    # Nothing was marked verified, and no key material reached the log or the trail.
    assert ApiKey.objects.get(pk=api_key.pk).verified_at is None
    payload = api_key.ciphertext.split(":", 2)[2]
    assert payload[:16] not in caplog.text
    assert payload[:16] not in str(event.details)


def test_a_key_missing_from_the_keyring_is_still_called_missing(
    signed_in: Client, user: User, settings, caplog: pytest.LogCaptureFixture
) -> None:
    api_key = store(user)
    settings.ENCRYPTION_KEYS = "other:" + base64.b64encode(bytes(32)).decode()
    caplog.set_level(logging.WARNING, logger=LOGGER)

    page = verify(signed_in, api_key)

    assert MISSING in page
    assert ALTERED not in page
    assert not [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert not AuditEvent.objects.filter(
        action="api_key.verified", details__reason="stored value altered"
    ).exists()
    assert ApiKey.objects.get(pk=api_key.pk).verified_at is None


def test_an_untouched_key_is_not_reported(
    signed_in: Client, user: User, settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The control: the same request on an intact row reaches Convai (here unreachable), and
    says nothing about tampering."""
    settings.CONVAI_API_BASE_URL = "http://127.0.0.1:9/sandbox"
    api_key = store(user)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    page = verify(signed_in, api_key)
    assert ALTERED not in page and MISSING not in page
    assert "could not be verified" in page
    event = AuditEvent.objects.get(action="api_key.verified")
    assert event.details["reason"] == "Convai unavailable"
