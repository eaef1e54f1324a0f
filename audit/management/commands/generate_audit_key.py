"""Print a new entry for CONVAI_ADMIN_AUDIT_KEYS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.keyring import generate_entry
from convai_admin.keyring import KEY_ID_PATTERN


class Command(BaseCommand):
    help = "Print a new 'keyid:base64key' entry (32 random bytes) for CONVAI_ADMIN_AUDIT_KEYS."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", dest="key_id", help="Key ID (default: a + UTC timestamp).")

    def handle(self, *args: Any, **options: Any) -> None:
        key_id = options.get("key_id") or "a" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        if not KEY_ID_PATTERN.match(key_id):
            raise CommandError("Use 1-40 letters, digits, '.', '_' or '-' for the key ID.")
        self.stdout.write(generate_entry(key_id))
        self.stderr.write(
            "Prepend this entry to CONVAI_ADMIN_AUDIT_KEYS and keep the old entries after it: "
            "new events are sealed with the first, old ones still verify. Keep it secret, and "
            "out of the database's backups."
        )
