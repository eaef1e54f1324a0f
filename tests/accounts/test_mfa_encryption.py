"""Two-factor secrets at rest: the TOTP seed and the recovery-code seed are sealed with the
ENCRYPTION_KEYS keyring (accounts/mfa_secrets.py), sign-in with codes still works, a keyring
rotation keeps them readable, migration 0003 seals the seeds stored in clear before it."""

from __future__ import annotations

import base64
import json
import os

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from accounts import mfa_secrets
from accounts.models import User
from convai_admin import encryption
from keys.checks import check_stored_key_ids
from keys.upkeep import stored_keys_readability
from tests.accounts.mfa_support import enable_totp, totp_code
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

OLD = f"old:{base64.b64encode(os.urandom(32)).decode()}"
NEW = f"new:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def stored_text(user: User) -> str:
    """The authenticators' data as the database holds it (raw SQL, past allauth and Django)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, CAST(data AS TEXT) FROM mfa_authenticator WHERE user_id = %s "
            "ORDER BY type",
            [user.pk],
        )
        return json.dumps(cursor.fetchall())


def stored_data(user: User, kind: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CAST(data AS TEXT) FROM mfa_authenticator WHERE user_id = %s AND type = %s",
            [user.pk, kind],
        )
        return json.loads(cursor.fetchone()[0])


def recovery_seed(user: User) -> str:
    """The recovery codes' seed in clear, through allauth (the adapter opens it)."""
    row = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    return mfa_secrets.open_sealed(row.data["seed"])


def signs_in_with(user: User, code: str) -> bool:
    client = Client()
    client.post(reverse("accounts:login"), {"login": user.username, "password": TEST_PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    return response.status_code == 302 and "_auth_user_id" in client.session


@pytest.fixture
def user() -> User:
    return MembershipFactory().user


def test_the_database_holds_no_seed_in_clear(user: User, settings) -> None:
    secret, codes = enable_totp(user)
    raw = stored_text(user)
    assert secret not in raw
    assert recovery_seed(user) not in raw
    assert not any(code in raw for code in codes)
    active = encryption.get_keyring().active_id
    assert stored_data(user, "totp")["secret"].startswith(f"v1:{active}:")
    assert stored_data(user, "recovery_codes")["seed"].startswith(f"v1:{active}:")


def test_totp_and_recovery_codes_still_sign_in(user: User) -> None:
    secret, codes = enable_totp(user)
    assert signs_in_with(user, totp_code(secret))
    assert signs_in_with(user, codes[0])
    assert not signs_in_with(user, codes[0])  # still once only
    row = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    assert RecoveryCodes(row).get_unused_codes() == codes[1:]


def test_a_clear_or_foreign_value_is_refused_without_quoting_it(user: User) -> None:
    secret, _codes = enable_totp(user)
    with pytest.raises(encryption.ValueTampered) as clear:
        mfa_secrets.open_sealed(secret)
    assert secret not in str(clear.value)
    # Sealed for another purpose (an API key's row): the associated data does not match.
    foreign = encryption.encrypt(secret, associated_data=b"api-key:1:1")
    with pytest.raises(encryption.ValueTampered) as swapped:
        mfa_secrets.open_sealed(foreign)
    assert secret not in str(swapped.value)


def test_rotation_reseals_them_and_the_old_key_can_go(user: User, settings, capsys) -> None:
    settings.ENCRYPTION_KEYS = OLD
    secret, codes = enable_totp(user)
    other: User = UserFactory()  # type: ignore[assignment]
    settings.ENCRYPTION_KEYS = f"{NEW},{OLD}"
    enable_totp(other)  # already on the active key
    assert [m.id for m in check_stored_key_ids(databases=["default"])] == ["keys.W002"]

    call_command("rotate_encryption_keys")

    out = capsys.readouterr().out
    assert "Two-factor authenticators: 2 re-encrypted, 2 already current" in out
    assert stored_data(user, "totp")["secret"].startswith("v1:new:")
    assert stored_data(user, "recovery_codes")["seed"].startswith("v1:new:")
    settings.ENCRYPTION_KEYS = NEW  # the old key leaves the keyring
    assert check_stored_key_ids(databases=["default"]) == []
    assert signs_in_with(user, totp_code(secret))
    assert signs_in_with(user, codes[3])
    assert secret not in out


def test_a_missing_key_is_named_by_the_check_and_counted_by_the_restore_check(
    user: User, settings
) -> None:
    settings.ENCRYPTION_KEYS = OLD
    enable_totp(user)
    assert stored_keys_readability().mfa_readable == 2
    settings.ENCRYPTION_KEYS = NEW  # removed before rotating
    assert [m.id for m in check_stored_key_ids(databases=["default"])] == ["keys.E002"]
    readability = stored_keys_readability()
    assert (readability.mfa_readable, readability.mfa_unreadable) == (0, 2)


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_the_seeds_stored_in_clear_and_back() -> None:
    executor = MigrationExecutor(connection)
    before = [
        ("accounts", "0002_password_change_failure_counter"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("mfa", "Authenticator")
        user: User = UserFactory()  # type: ignore[assignment]
        secret, seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "ab" * 40
        old.objects.create(user_id=user.pk, type="totp", data={"secret": secret})
        old.objects.create(
            user_id=user.pk, type="recovery_codes", data={"seed": seed, "used_mask": 0}
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    raw = stored_text(user)
    assert secret not in raw and seed not in raw
    assert stored_data(user, "recovery_codes")["used_mask"] == 0
    assert recovery_seed(user) == seed
    assert signs_in_with(user, totp_code(secret))

    # Backwards: allauth's own clear form again (and forwards once more, for later tests).
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        assert stored_data(user, "totp") == {"secret": secret}
        assert stored_data(user, "recovery_codes")["seed"] == seed
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert stored_data(user, "totp")["secret"].startswith("v1:")
