"""Builds' sealed values (HS256 player secrets, kept minted tokens) follow the keyring: the
key-ID check counts them, and `rotate_encryption_keys` re-seals them so the old key can go."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.db import connection

from builds import services
from builds.models import Build, MintedToken, PlayerAuth
from convai_admin import encryption
from keys.checks import check_stored_key_ids

OLD = f"old:{base64.b64encode(os.urandom(32)).decode()}"
NEW = f"new:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def stored(table: str, column: str) -> list[str]:
    """The values as the database holds them (raw SQL)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def sealed(settings, register: Callable[..., services.Issued]) -> Build:
    """An HS256 build and one kept token, sealed under OLD (the Admin's API key stays under
    the suite's key, kept in the keyring after OLD)."""
    settings.ENCRYPTION_KEYS = f"{OLD},{settings.ENCRYPTION_KEYS}"
    build = register(player_auth=PlayerAuth.HS256).build
    MintedToken.objects.create(
        build=build,
        build_ref=build.pk,
        ciphertext=encryption.encrypt(
            "token-in-clear", associated_data=MintedToken(build_ref=build.pk).encryption_context
        ),
        expires_at=build.created_at,
    )
    return build


def test_rotation_reseals_player_secrets_and_kept_tokens(sealed: Build, settings, capsys) -> None:
    minted = MintedToken.objects.get(build=sealed)
    context = minted.encryption_context
    secret = encryption.decrypt(
        sealed.player_secret_ciphertext, associated_data=sealed.secret_context
    )
    settings.ENCRYPTION_KEYS = f"{NEW},{settings.ENCRYPTION_KEYS}"
    assert [m.id for m in check_stored_key_ids(databases=["default"])] == ["keys.W002"]

    call_command("rotate_encryption_keys")

    assert "game builds: 2 re-encrypted, 0 already current" in capsys.readouterr().out
    values = stored("builds_build", "player_secret_ciphertext") + stored(
        "builds_mintedtoken", "ciphertext"
    )
    assert {encryption.key_id_of(value) for value in values} == {"new"}
    settings.ENCRYPTION_KEYS = NEW  # the old key leaves the keyring
    assert check_stored_key_ids(databases=["default"]) == []
    sealed.refresh_from_db()
    assert (
        encryption.decrypt(sealed.player_secret_ciphertext, associated_data=sealed.secret_context)
        == secret
    )
    minted.refresh_from_db()
    assert encryption.decrypt(minted.ciphertext, associated_data=context) == "token-in-clear"


def test_a_key_removed_before_rotating_is_named_by_the_check(sealed: Build, settings) -> None:
    suite_keys = settings.ENCRYPTION_KEYS.split(",", 1)[1]  # the API key's stay
    settings.ENCRYPTION_KEYS = f"{NEW},{suite_keys}"
    errors = [m for m in check_stored_key_ids(databases=["default"]) if m.id == "keys.E002"]
    assert len(errors) == 1
    assert "'old'" in errors[0].msg
    with pytest.raises(Exception, match="could not be decrypted"):
        call_command("rotate_encryption_keys")
    assert {
        encryption.key_id_of(v) for v in stored("builds_build", "player_secret_ciphertext")
    } == {"old"}
