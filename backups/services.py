"""Backup and restore of a whole install: the operations behind `manage.py backup` / `restore`.

A backup is the database, the secrets the database is useless without (the keyring that
decrypts stored API keys, the audit chain's keys, the fingerprint secret) sealed under a
passphrase, and the versions that say where it can go back: only into the same app and schema
version (docs/backup.md). Both record an audit event in the global chain; a restore's goes
into the restored database, sealed with the restored audit keys.
"""

from __future__ import annotations

import base64
import os
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit import keyring as audit_keyring
from audit.chain import verify_all
from audit.models import Outcome
from audit.services import record
from keys import crypto
from keys.upkeep import stored_keys_readability

from . import database
from .archive import Member, OpenedArchive, open_archive, write_archive
from .errors import BackupError

MIN_PASSPHRASE = 12
# Environment variable → setting, for every secret an archive carries.
SECRET_SETTINGS = {
    "CONVAI_ADMIN_ENCRYPTION_KEYS": "ENCRYPTION_KEYS",
    "CONVAI_ADMIN_AUDIT_KEYS": "AUDIT_KEYS",
    "CONVAI_ADMIN_KEY_FINGERPRINT_SECRET": "KEY_FINGERPRINT_SECRET",
}


def _ring_spec(keys: Mapping[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys.items())


@sensitive_variables()
def current_secrets() -> dict[str, str]:
    """The secrets in force, written as the environment spells them. The audit ring as
    parsed (in DEBUG, the stand-in derived from SECRET_KEY, so its events still verify after a
    restore); the fingerprint secret as used (SECRET_KEY when no dedicated one is set)."""
    try:
        encryption = _ring_spec(crypto.get_keyring().keys)
    except crypto.KeyringError:
        encryption = ""  # DEBUG without a keyring: no key could have been stored
    return {
        "CONVAI_ADMIN_ENCRYPTION_KEYS": encryption,
        "CONVAI_ADMIN_AUDIT_KEYS": _ring_spec(audit_keyring.keyring().keys),
        "CONVAI_ADMIN_KEY_FINGERPRINT_SECRET": str(
            settings.KEY_FINGERPRINT_SECRET or settings.SECRET_KEY
        ),
    }


@contextmanager
def secrets_in_force(secrets: Mapping[str, str]) -> Iterator[None]:
    """Run a block under the archive's secrets (the restore's own audit event and checks),
    whatever this process's environment holds; the settings are put back afterwards."""
    saved = {name: getattr(settings, name, "") for name in SECRET_SETTINGS.values()}
    try:
        for variable, name in SECRET_SETTINGS.items():
            setattr(settings, name, secrets.get(variable, ""))
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


def database_label() -> str:
    """The database as an operator names it: the SQLite file or the PostgreSQL database."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and not name.startswith("file:") and name != ":memory:":
        return Path(name).name
    return name


# --- Backup ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    sha256: str
    size: int
    database: str
    app_version: str


def archive_path(destination: Path) -> Path:
    """A directory gets a dated archive name inside it; an existing file is never replaced."""
    if destination.is_dir():
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        destination = destination / f"convai-admin-{settings.VERSION}-{stamp}.tar.gz"
    if destination.exists():
        raise BackupError(f"{destination} exists already: name a new file or a directory.")
    if not destination.parent.is_dir():
        raise BackupError(f"There is no directory {destination.parent}.")
    return destination


@sensitive_variables()
def create_backup(*, destination: Path, passphrase: str) -> BackupResult:
    """Write one archive of the install. Recorded as `backup.created` (or its failure)."""
    path = destination
    try:
        if len(passphrase) < MIN_PASSPHRASE:
            raise BackupError(
                f"The passphrase is too short: use at least {MIN_PASSPHRASE} characters "
                "(a few random words will do)."
            )
        path = archive_path(destination)
        result = _write_backup(path, passphrase)
    except BackupError as error:
        record(
            "backup.created",
            target_type="backup",
            target_label=path.name,
            outcome=Outcome.FAILURE,
            details={"reason": error.message},
        )
        raise
    record(
        "backup.created",
        target_type="backup",
        target_label=path.name,
        details={
            "sha256": result.sha256,
            "size": result.size,
            "database": result.database,
            "app_version": result.app_version,
        },
    )
    return result


@sensitive_variables()
def _write_backup(path: Path, passphrase: str) -> BackupResult:
    vendor = database.vendor()
    manifest: dict[str, Any] = {
        "app_version": settings.VERSION,
        "schema": database.database_schema(),
        "database": vendor,
        "created_at": timezone.now().isoformat(),
    }
    secrets = current_secrets()
    # The dump waits beside the archive (mkdtemp: 0700), not in a shared /tmp.
    with tempfile.TemporaryDirectory(prefix=".convai-admin-backup-", dir=path.parent) as work:
        dump = Path(work) / database.MEMBERS[vendor]
        database.dump(dump)
        sha256 = write_archive(
            path,
            manifest=manifest,
            members=[Member(dump.name, dump)],
            secrets=secrets,
            passphrase=passphrase,
        )
    return BackupResult(
        path=path,
        sha256=sha256,
        size=path.stat().st_size,
        database=vendor,
        app_version=settings.VERSION,
    )


# --- Restore --------------------------------------------------------------------------------


def check_versions(manifest: Mapping[str, Any]) -> None:
    """Refuse an archive of another app or schema version, saying how to get there."""
    archived, here = str(manifest.get("app_version")), settings.VERSION
    schema, ours = dict(manifest.get("schema") or {}), database.code_schema()
    differences = [
        f"{app}: archive {schema.get(app, '(none)')}, this install {ours.get(app, '(none)')}"
        for app in sorted(set(schema) | set(ours))
        if schema.get(app) != ours.get(app)
    ]
    if archived == here and not differences:
        return
    detail = f" Schema differences: {'; '.join(differences[:6])}." if differences else ""
    raise BackupError(
        f"This archive was made by Convai Admin {archived}; this install is {here}.{detail} "
        f"A backup is restored only into the version that made it: install {archived}, restore "
        f"there, then upgrade to {here} (backup, install, migrate, collectstatic, restart; see "
        "docs/backup.md). Nothing was restored."
    )


def read_archive(path: Path, directory: Path) -> OpenedArchive:
    """Unpack and check an archive before anything is asked or changed: every checksum, the
    versions, and the database vendor (a dump goes back into the same kind of database)."""
    opened = open_archive(path, directory)
    check_versions(opened.manifest)
    made_on, here = opened.manifest.get("database"), database.vendor()
    if made_on != here:
        raise BackupError(
            f"This archive holds a {made_on} database; this install uses {here}. Restore it "
            f"into a {made_on} install. Nothing was restored."
        )
    return opened


@dataclass(frozen=True)
class RestoreResult:
    database: str
    keys_readable: int
    keys_unreadable: int
    mfa_readable: int
    mfa_unreadable: int
    chains: int
    chains_broken: int
    secrets_differ: list[str]

    @property
    def sound(self) -> bool:
        """Every stored key and two-factor secret decrypts and every audit chain verifies."""
        return not self.keys_unreadable and not self.mfa_unreadable and not self.chains_broken


@sensitive_variables()
def restore_backup(
    *,
    opened: OpenedArchive,
    passphrase: str,
    secrets_file: Path,
    replace_existing: bool = False,
) -> RestoreResult:
    """Put the archive's database in place of this one's (empty unless `replace_existing`), then
    prove it under the archive's secrets: every stored key and two-factor secret decrypts,
    every audit chain verifies.
    The secrets go to `secrets_file` (0600) first, so a restored database never exists without
    its keys. The restore itself is recorded (`backup.restored`) in the restored log; a failed
    one is not (pg_restore runs in one transaction: the database it failed on is left as it was,
    and an event there would make it non-empty for the next attempt)."""
    secrets = opened.open_secrets(passphrase)  # wrong passphrase: refused before any change
    holding = database.tables_with_rows()
    if holding and not replace_existing:
        raise BackupError(
            f"The database {database_label()} is not empty ({len(holding)} table(s) hold rows, "
            f"e.g. {', '.join(holding[:3])}). Restore into an empty database, or replace its "
            "content with --force. Nothing was restored."
        )
    try:
        before = current_secrets()
    except Exception:  # this process's own keys are unreadable: they differ, whatever they are
        before = {}
    write_secrets_file(secrets_file, secrets)
    database.restore(opened.member(database.MEMBERS[opened.manifest["database"]]))
    with secrets_in_force(secrets):
        record(
            "backup.restored",
            target_type="backup",
            target_label=opened.path.name,
            details={
                "created_at": opened.manifest.get("created_at"),
                "app_version": opened.manifest.get("app_version"),
                "replaced_existing": bool(holding),
            },
        )
        readability = stored_keys_readability()
        reports = verify_all()
    return RestoreResult(
        database=database_label(),
        keys_readable=readability.readable,
        keys_unreadable=readability.unreadable,
        mfa_readable=readability.mfa_readable,
        mfa_unreadable=readability.mfa_unreadable,
        chains=len(reports),
        chains_broken=sum(1 for report in reports if not report.intact),
        secrets_differ=sorted(name for name in secrets if before.get(name) != secrets[name]),
    )


@sensitive_variables()
def write_secrets_file(path: Path, secrets: Mapping[str, str]) -> None:
    """The archive's secrets as `NAME='value'` lines (shell, `.env`, systemd EnvironmentFile),
    written atomically and 0600 from the start."""
    text = "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(secrets.items()))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise BackupError(
            f"Cannot write the archive's keys to {path}: {error.strerror}. Nothing was restored."
        ) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
