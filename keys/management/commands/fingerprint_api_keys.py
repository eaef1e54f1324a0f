"""Compute the fingerprints that find a key added twice (keys.crypto.fingerprint)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys.crypto import KeyringError, get_keyring
from keys.upkeep import fill_fingerprints


class Command(BaseCommand):
    help = (
        "Fingerprint stored Convai API keys that have none (rows the upgrade could not "
        "decrypt). With --all, fingerprint every key again: run it after changing "
        "CONVAI_ADMIN_KEY_FINGERPRINT_SECRET (or DJANGO_SECRET_KEY while it derives from it)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="recompute every fingerprint")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            get_keyring()
        except KeyringError as error:
            raise CommandError(str(error)) from None
        result = fill_fingerprints(everything=options["all"])
        self.stdout.write(f"Fingerprinted: {result.filled}")
        if result.duplicates:
            self.stdout.write(
                f"Second copies of a key their owner already holds (left without a "
                f"fingerprint): {result.duplicates}"
            )
        if result.unreadable:
            raise CommandError(
                f"{result.unreadable} stored key(s) could not be decrypted. Restore the "
                "missing key(s) to CONVAI_ADMIN_ENCRYPTION_KEYS and run this again."
            )
