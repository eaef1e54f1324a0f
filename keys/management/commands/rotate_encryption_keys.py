"""Re-encrypt stored API keys (and two-factor secrets) that are still on an older key under the
active key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.context import audit_context
from keys.crypto import KeyringError, get_keyring
from keys.upkeep import rotate_api_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Convai API key and two-factor secret that is not on the "
        "active (first) key of CONVAI_ADMIN_ENCRYPTION_KEYS. Afterwards the older keys can "
        "be removed."
    )
    # The keyring check reports exactly what this command repairs: do not let it block us.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            get_keyring()
        except KeyringError as error:
            raise CommandError(str(error)) from None
        with audit_context(origin="command rotate_encryption_keys"):
            result = rotate_api_keys()
        self.stdout.write(f"Active key: {result.active_id}")
        if result.rotated:
            for key_id, count in sorted(result.rotated.items()):
                self.stdout.write(f"  {key_id}: {count} re-encrypted")
        else:
            self.stdout.write("  nothing to re-encrypt")
        self.stdout.write(f"  {result.active_id}: {result.already_current} already current")
        mfa = result.mfa
        self.stdout.write(
            f"Two-factor authenticators: {sum(mfa.rotated.values())} re-encrypted, "
            f"{mfa.already_current} already current"
        )
        for name, store in result.stores.items():
            self.stdout.write(
                f"{name}: {store.rotated} re-encrypted, {store.already_current} already current"
                + (f", {store.failed} could not be decrypted" if store.failed else "")
            )
        failed = result.failed_count
        if failed:
            for row_id, reason in sorted(result.failed.items()):
                self.stderr.write(f"  row {row_id}: {reason}")
            for label, reason in sorted(mfa.failed.items()):
                self.stderr.write(f"  {label}: {reason}")
            raise CommandError(
                f"{failed} stored value(s) could not be decrypted and were left as they are. "
                "Restore the missing key(s) to the keyring and run this again."
            )
        total = (
            sum(result.rotated.values())
            + sum(mfa.rotated.values())
            + sum(store.rotated for store in result.stores.values())
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {total} re-encrypted. Keys other than {result.active_id!r} can now be "
                "removed from the keyring."
            )
        )
