"""Key rotation: `rotate_encryption_keys` moves every stored key to the active key, after
which the old key can leave the keyring; the system check names missing or stale key IDs."""

from __future__ import annotations

import base64
import json
import os
import secrets

import pytest
from django.core.checks import Error, Warning
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit.models import AuditEvent
from keys import crypto
from keys.checks import check_encryption_keyring, check_stored_key_ids
from keys.models import ApiKey
from keys.services import add_api_key, reveal, revoke_api_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def new_user() -> User:
    user: User = UserFactory()  # type: ignore[assignment]
    return user


OLD = f"old:{base64.b64encode(os.urandom(32)).decode()}"
NEW = f"new:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
LOST = f"lost:{base64.b64encode(os.urandom(32)).decode()}"


def store_keys(settings, keyring: str, count: int) -> dict[str, str]:
    """Store `count` keys (unverified: no network needed) under `keyring`; id -> plaintext."""
    settings.ENCRYPTION_KEYS = keyring
    stored = {}
    for n in range(count):
        raw = secrets.token_hex(16)
        api_key = add_api_key(
            actor=new_user(), label=f"key {n}", raw_key=raw, skip_verification=True
        )
        stored[str(api_key.pk)] = raw
    return stored


def test_rotation_moves_everything_to_the_active_key_and_old_key_can_go(settings, capsys):
    stored = store_keys(settings, OLD, 3)
    revoked = add_api_key(
        actor=new_user(), label="gone", raw_key=secrets.token_hex(16), skip_verification=True
    )
    revoke_api_key(actor=revoked.owner, api_key_id=revoked.pk)
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    stored |= store_keys(settings, f"{NEW},{OLD}", 1)

    call_command("rotate_encryption_keys")

    out = capsys.readouterr().out
    assert "old: 3 re-encrypted" in out
    assert "new: 1 already current" in out
    rows = ApiKey.objects.exclude(ciphertext="")
    assert {row.encryption_key_id for row in rows} == {"new"}
    assert all(row.ciphertext.startswith("v1:new:") for row in rows)

    settings.ENCRYPTION_KEYS = NEW  # the old key is removed from the keyring
    for row in ApiKey.objects.exclude(ciphertext=""):
        assert reveal(row) == stored[str(row.pk)]
    assert check_encryption_keyring() == []
    assert check_stored_key_ids(databases=["default"]) == []
    assert ApiKey.objects.get(pk=revoked.pk).ciphertext == ""


def test_rotation_is_audited_with_counts_and_no_key_material(settings):
    stored = store_keys(settings, OLD, 2)
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    call_command("rotate_encryption_keys")
    event = AuditEvent.objects.get(action="encryption.rotate")
    assert event.team is None
    assert event.outcome == "success"
    assert event.details["rotated"] == {"old": 2}
    assert event.details["active_key_id"] == "new"
    dumped = json.dumps([e.details for e in AuditEvent.objects.all()])
    for raw in stored.values():
        assert raw not in dumped
    for entry in (OLD, NEW):
        assert entry.split(":", 1)[1] not in dumped


def test_second_rotation_has_nothing_to_do(settings, capsys):
    store_keys(settings, OLD, 1)
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    call_command("rotate_encryption_keys")
    capsys.readouterr()
    before = list(ApiKey.objects.values_list("ciphertext", flat=True))
    call_command("rotate_encryption_keys")
    assert "nothing to re-encrypt" in capsys.readouterr().out
    assert list(ApiKey.objects.values_list("ciphertext", flat=True)) == before


def test_rows_that_cannot_be_decrypted_are_reported_and_left_alone(settings, capsys):
    lost = store_keys(settings, LOST, 1)
    readable = store_keys(settings, OLD, 2)
    lost_row = ApiKey.objects.get(pk=next(iter(lost)))
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"  # 'lost' is no longer in the keyring

    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_encryption_keys")

    err = capsys.readouterr().err
    assert str(lost_row.pk) in err and "'lost'" in err
    assert lost[str(lost_row.pk)] not in err
    assert ApiKey.objects.get(pk=lost_row.pk).ciphertext == lost_row.ciphertext
    for pk, raw in readable.items():
        row = ApiKey.objects.get(pk=pk)
        assert row.encryption_key_id == "new"
        assert reveal(row) == raw
    event = AuditEvent.objects.get(action="encryption.rotate")
    assert event.outcome == "failure"
    assert event.details["failed"] == 1


def test_rotation_refuses_a_malformed_keyring(settings):
    settings.ENCRYPTION_KEYS = "new:tooshort"
    with pytest.raises(CommandError, match="'new'"):
        call_command("rotate_encryption_keys")


def test_check_names_key_ids_in_use_that_the_keyring_lacks(settings):
    store_keys(settings, LOST, 1)
    store_keys(settings, OLD, 1)
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    messages = check_stored_key_ids(databases=["default"])
    errors = [m for m in messages if isinstance(m, Error)]
    assert [m.id for m in errors] == ["keys.E002"]
    assert "'lost'" in errors[0].msg and "'old'" not in errors[0].msg
    warnings = [m for m in messages if isinstance(m, Warning)]
    assert [m.id for m in warnings] == ["keys.W002"]
    assert "'old'" in warnings[0].msg


def test_check_flags_a_malformed_keyring_without_showing_the_key(settings):
    short = base64.b64encode(os.urandom(20)).decode()
    settings.ENCRYPTION_KEYS = f"{NEW},weak:{short}"
    [message] = check_encryption_keyring()
    assert message.id == "keys.E001"
    assert "'weak'" in message.msg
    assert short not in message.msg and NEW.split(":", 1)[1] not in message.msg


def test_check_warns_on_an_empty_keyring(settings):
    settings.ENCRYPTION_KEYS = ""
    [message] = check_encryption_keyring()
    assert message.id == "keys.W001"


def test_check_survives_missing_tables(settings, monkeypatch):
    """Before `migrate` the table does not exist: the check must not crash."""
    settings.ENCRYPTION_KEYS = NEW
    monkeypatch.setattr(ApiKey._meta, "db_table", "keys_apikey_not_created_yet")
    assert check_stored_key_ids(databases=["default"]) == []


def test_check_is_registered_as_a_database_check(settings):
    """It runs where the database is meant to be read (`migrate`, which `make run` calls
    first, and `check --database`), not before every management command."""
    store_keys(settings, LOST, 1)
    settings.ENCRYPTION_KEYS = NEW
    with pytest.raises(Exception, match=r"keys\.E002"):
        call_command("check", databases=["default"])
    with CaptureQueriesContext(connection) as queries:
        call_command("check")
    assert len(queries) == 0


def test_keys_encrypted_before_a_settings_change_decrypt_after_it(settings):
    """The keyring is never cached across setting changes."""
    stored = store_keys(settings, OLD, 1)
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    row = ApiKey.objects.get()
    assert reveal(row) == next(iter(stored.values()))
    settings.ENCRYPTION_KEYS = NEW
    with pytest.raises(crypto.DecryptionError, match="'old'"):
        reveal(row)
