"""System checks for keys: the encryption keyring must be well formed (every command checks
that) and must still hold every key that stored values were encrypted with (a database query:
tagged `database`, so it runs at `migrate`, which `make run` calls before serving, and with
`manage.py check --database default`, not before every management command)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction

from . import crypto


@register(Tags.security)
def check_encryption_keyring(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    spec = getattr(settings, "ENCRYPTION_KEYS", "") or ""
    if not spec.strip():
        # Settings refuse to start without a keyring in production; in development we only
        # warn, so migrations and other commands keep working.
        return [
            Warning(
                "ENCRYPTION_KEYS is empty: members cannot add Convai API keys.",
                hint="Set CONVAI_ADMIN_ENCRYPTION_KEYS to the output of "
                "`python manage.py generate_encryption_key`.",
                id="keys.W001",
            )
        ]
    try:
        crypto.parse_keyring(spec)
    except crypto.KeyringError as error:
        return [
            Error(
                f"The encryption keyring is malformed: {error}",
                hint="Each entry is 'keyid:base64key' (32 bytes); entries are separated by "
                "commas and the first is active.",
                id="keys.E001",
            )
        ]
    return []


@register(Tags.database)
def check_stored_key_ids(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Stored API keys or two-factor secrets whose encryption key ID the keyring lacks (lost)
    or no longer uses first (not rotated yet)."""
    spec = getattr(settings, "ENCRYPTION_KEYS", "") or ""
    if not databases or DEFAULT_DB_ALIAS not in databases or not spec.strip():
        return []
    try:
        keyring = crypto.parse_keyring(spec)
    except crypto.KeyringError:
        return []  # check_encryption_keyring reports it
    try:
        # A savepoint: on PostgreSQL a failed query aborts the whole transaction otherwise.
        with transaction.atomic():
            in_use = _key_ids_in_use()
    except DatabaseError:
        return []  # tables not created yet (before migrate): nothing is encrypted anyway
    messages: list[CheckMessage] = []
    missing = sorted(kid for kid in in_use if kid not in keyring.keys)
    if missing:
        messages.append(
            Error(
                "Stored API keys or two-factor secrets are encrypted with key ID(s) missing "
                "from ENCRYPTION_KEYS: "
                + ", ".join(repr(kid) for kid in missing)
                + ". They cannot be decrypted.",
                hint="Put the missing key(s) back in the keyring (after the active one), then "
                "run `python manage.py rotate_encryption_keys`.",
                id="keys.E002",
            )
        )
    old = sorted(kid for kid in in_use if kid in keyring.keys and kid != keyring.active_id)
    if old:
        messages.append(
            Warning(
                "Stored API keys or two-factor secrets still use older encryption key ID(s): "
                + ", ".join(repr(kid) for kid in old)
                + ".",
                hint="Run `python manage.py rotate_encryption_keys`; afterwards the old "
                "key(s) can be removed from ENCRYPTION_KEYS.",
                id="keys.W002",
            )
        )
    return messages


def _key_ids_in_use() -> set[str]:
    from accounts import mfa_secrets

    from . import hooks
    from .models import ApiKey

    return (
        set(
            ApiKey.objects.exclude(ciphertext="")
            .order_by()
            .values_list("encryption_key_id", flat=True)
            .distinct()
        )
        | mfa_secrets.stored_key_ids()
        | hooks.sealed_store_key_ids()
    )


def keyring_readiness() -> str | None:
    """/readyz (convai_admin.health): the keyring that reads stored API keys is loaded."""
    try:
        crypto.get_keyring()
    except crypto.KeyringError:
        return "encryption keyring missing or malformed"
    return None
