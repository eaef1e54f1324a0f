"""Print a new keyring entry for CONVAI_ADMIN_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys.crypto import generate_key_entry


class Command(BaseCommand):
    help = (
        "Print a new 'keyid:base64key' entry (32 random bytes) for CONVAI_ADMIN_ENCRYPTION_KEYS."
        " Put it first to make it the active key, keep the old entries after it, then run "
        "rotate_encryption_keys."
    )
    requires_system_checks: list[str] = []  # must work while the keyring is still broken

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", dest="key_id", help="Key ID (default: k + UTC timestamp).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            entry = generate_key_entry(options.get("key_id"))
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(entry)
        self.stderr.write(
            "Prepend this entry to CONVAI_ADMIN_ENCRYPTION_KEYS (comma-separated), restart, "
            "then run `python manage.py rotate_encryption_keys`. Keep it secret."
        )
