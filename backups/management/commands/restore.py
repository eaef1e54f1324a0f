"""manage.py restore ARCHIVE [--passphrase-file FILE] [--secrets-file PATH] [--force]

Into an empty install of the same version only (docs/backup.md). Checks every checksum and the
versions before asking for the passphrase; replaces a database that holds data only with
--force and the database's name typed back."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import audit_context
from backups import database, passphrase
from backups.errors import BackupError
from backups.services import database_label, read_archive, restore_backup


class Command(BaseCommand):
    help = (
        "Restore a backup archive into this (empty) install of the same version: the database, "
        "and the archive's keys written to --secrets-file for the service's environment."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", help="The archive `manage.py backup` wrote.")
        parser.add_argument("--passphrase-file", metavar="FILE")
        parser.add_argument(
            "--secrets-file",
            metavar="PATH",
            help="Where the archive's keys are written, 0600 (default: "
            "VAR_DIR/restored-secrets.env).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace a database that holds data (asks for its name to be typed).",
        )
        parser.add_argument(
            "--confirm",
            metavar="NAME",
            help="With --force and no terminal: the database's name, as the prompt asks it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        secrets_file = Path(
            options["secrets_file"] or Path(settings.VAR_DIR) / "restored-secrets.env"
        )
        with tempfile.TemporaryDirectory(prefix=".convai-admin-restore-") as work:
            try:
                opened = read_archive(Path(options["archive"]), Path(work))
                if options["force"]:
                    self._confirm_replacement(options["confirm"])
                secret = passphrase.obtain(
                    passphrase_file=options["passphrase_file"], confirm=False
                )
                with audit_context(origin="command restore"):
                    result = restore_backup(
                        opened=opened,
                        passphrase=secret,
                        secrets_file=secrets_file,
                        replace_existing=options["force"],
                    )
            except BackupError as error:
                raise CommandError(error.message) from None
        self.stdout.write(f"Restored {opened.path.name} into {result.database}.")
        self.stdout.write(
            f"Stored API keys: {result.keys_readable} decrypt, {result.keys_unreadable} do not. "
            f"Two-factor authenticators: {result.mfa_readable} decrypt, "
            f"{result.mfa_unreadable} do not. "
            f"Audit chains: {result.chains - result.chains_broken} of {result.chains} intact."
        )
        self.stdout.write(f"The archive's keys are in {secrets_file} (0600).")
        if result.secrets_differ:
            self.stdout.write(
                self.style.WARNING(
                    "This environment's "
                    + ", ".join(result.secrets_differ)
                    + f" differ from the archive's: put the values from {secrets_file} into "
                    "the service's environment (replacing these) before starting it, then "
                    "delete the file."
                )
            )
        if not result.sound:
            raise CommandError(
                "The restored install does not check out (see above): keep the old one if you "
                "still have it, and try another archive."
            )
        self.stdout.write(self.style.SUCCESS("Restore complete."))

    def _confirm_replacement(self, confirmed: str | None) -> None:
        name = database_label()
        holding = database.tables_with_rows()
        if not holding:
            return
        if confirmed is None:
            if not sys.stdin.isatty():
                raise BackupError(
                    f"--force replaces the data in {name}: confirm with --confirm {name}."
                )
            self.stdout.write(
                f"The database {name} holds data ({len(holding)} table(s) with rows). "
                "Restoring replaces all of it."
            )
            confirmed = input(f"Type the database's name ({name}) to go on: ")
        if confirmed.strip() != name:
            raise BackupError("The name typed does not match: nothing was restored.")
