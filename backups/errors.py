"""The one error of backups and restores: a refusal whose message says what to do next."""

from __future__ import annotations

from convai_admin.errors import DomainError


class BackupError(DomainError):
    """A backup could not be written, or an archive cannot be restored here. The message names
    files, versions and tools, never a key, a passphrase or a database password."""

    default_message = "The backup or restore failed."
