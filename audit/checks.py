"""System checks for the audit key ring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .keyring import AuditKeyringError, keyring, parse_audit_keys


@register(Tags.security)
def check_audit_keys(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    spec = getattr(settings, "AUDIT_KEYS", "") or ""
    if not spec.strip():
        # Settings refuse to start without it when DEBUG is off; in DEBUG we only warn.
        return [
            Warning(
                "CONVAI_ADMIN_AUDIT_KEYS is empty: the audit chain is sealed with a key derived "
                "from SECRET_KEY (development only).",
                hint="Set CONVAI_ADMIN_AUDIT_KEYS to the output of "
                "`python manage.py generate_audit_key`.",
                id="audit.W001",
            )
        ]
    try:
        parse_audit_keys(spec)
    except AuditKeyringError as error:
        return [Error(f"The audit key ring is malformed: {error}", id="audit.E001")]
    return []


def audit_keys_readiness() -> str | None:
    """/readyz (convai_admin.health): the keys that seal the audit chain are loaded (the
    stand-in derived from SECRET_KEY only counts in DEBUG)."""
    try:
        ring = keyring()
    except AuditKeyringError:
        return "audit keys missing or malformed"
    if ring.derived and not settings.DEBUG:
        return "audit keys missing or malformed"
    return None
