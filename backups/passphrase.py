"""Where a command gets the archive's passphrase: a file, the environment, or a prompt —
never the command line, where `ps` and the shell's history would show it."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from django.views.decorators.debug import sensitive_variables

from .errors import BackupError

ENV_VAR = "CONVAI_ADMIN_BACKUP_PASSPHRASE"


@sensitive_variables()
def obtain(*, passphrase_file: str | None, confirm: bool) -> str:
    """From --passphrase-file (its first line), else CONVAI_ADMIN_BACKUP_PASSPHRASE, else asked
    on the terminal (twice when `confirm`: a typo in a new passphrase loses the backup)."""
    if passphrase_file:
        try:
            text = Path(passphrase_file).read_text(encoding="utf-8")
        except OSError as error:
            raise BackupError(f"Cannot read {passphrase_file}: {error.strerror}.") from None
        lines = text.splitlines()
        passphrase = lines[0] if lines else ""
        if not passphrase:
            raise BackupError(f"{passphrase_file} is empty: its first line is the passphrase.")
        return passphrase
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    if not sys.stdin.isatty():
        raise BackupError(
            f"No passphrase: give --passphrase-file FILE or set {ENV_VAR} (no terminal to ask on)."
        )
    passphrase = getpass.getpass("Archive passphrase: ")
    if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
        raise BackupError("The two passphrases differ. Nothing was written.")
    return passphrase
