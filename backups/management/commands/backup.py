"""manage.py backup [DESTINATION] [--passphrase-file FILE]

Writes one archive (0600): the database, the keyrings sealed under the passphrase, the app and
schema versions, a manifest with every member's SHA-256 (docs/backup.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import audit_context
from backups import passphrase
from backups.errors import BackupError
from backups.services import create_backup


class Command(BaseCommand):
    help = (
        "Write one backup archive: the database, the encryption and audit keys sealed under a "
        "passphrase, and the app and schema versions. The passphrase comes from "
        f"--passphrase-file, ${passphrase.ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "destination",
            nargs="?",
            help="A new file, or a directory for a dated name (default: VAR_DIR/backups/).",
        )
        parser.add_argument(
            "--passphrase-file",
            metavar="FILE",
            help="Read the passphrase from the first line of FILE (keep it 0600).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        destination = options["destination"]
        if destination is None:
            default = Path(settings.VAR_DIR) / "backups"
            default.mkdir(mode=0o700, exist_ok=True)
            destination = str(default)
        with audit_context(origin="command backup"):
            try:
                secret = passphrase.obtain(passphrase_file=options["passphrase_file"], confirm=True)
                result = create_backup(destination=Path(destination), passphrase=secret)
            except BackupError as error:
                raise CommandError(error.message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written: {result.path} ({result.size} bytes, {result.database}, "
                f"Convai Admin {result.app_version})"
            )
        )
        self.stdout.write(f"SHA-256: {result.sha256}")
        self.stdout.write(
            "Store the archive and its passphrase in different places: the archive alone "
            "cannot be opened, and without the passphrase it cannot be restored."
        )
