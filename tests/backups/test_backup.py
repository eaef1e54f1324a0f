"""What `manage.py backup` writes: one 0600 archive, written whole or not at all, holding the
dump, the versions and a checksum of every member, and no secret (nor a two-factor seed) in
clear; its audit event."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from backups import database
from backups.archive import sha256_of
from backups.errors import BackupError
from backups.services import current_secrets
from tests.accounts.mfa_support import enable_totp
from tests.factories import UserFactory

from .support import PASSPHRASE, make_archive, manifest_of, members_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_archive_is_owner_only_and_lists_every_member_with_its_checksum(
    tmp_path: Path, team: object
) -> None:
    archive = make_archive(tmp_path)
    assert archive.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    manifest = manifest_of(archive)
    members = members_of(archive)
    assert set(members) == {"manifest.json", *manifest["members"]}
    assert set(manifest["members"]) == {database.MEMBERS[manifest["database"]], "secrets.bin"}
    for name, facts in manifest["members"].items():
        assert facts["sha256"] == hashlib.sha256(members[name]).hexdigest()
        assert facts["size"] == len(members[name])
    assert manifest["app_version"] == settings.VERSION
    assert manifest["schema"] == database.code_schema()
    assert manifest["kdf"]["name"] == "scrypt" and manifest["cipher"] == "AES-256-GCM"


def test_no_key_and_no_passphrase_is_in_the_archive_in_clear(tmp_path: Path) -> None:
    totp_secret, _codes = enable_totp(UserFactory())
    archive = make_archive(tmp_path)
    blob = b"".join(members_of(archive).values()) + archive.read_bytes()
    secrets = current_secrets()
    needles = [PASSPHRASE.encode(), totp_secret.encode()]
    for spec in secrets.values():
        for entry in filter(None, spec.split(",")):
            needles.append(entry.encode())
            encoded = entry.partition(":")[2]
            if encoded:
                needles.append(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    for needle in needles:
        assert needle not in blob


def test_a_backup_is_audited_in_the_global_chain(tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    event = AuditEvent.objects.get(action="backup.created")
    assert (event.team_id, event.actor_id, event.outcome) == (None, None, "success")
    assert (event.origin, event.target_type, event.target_label) == (
        "command backup",
        "backup",
        archive.name,
    )
    assert event.details["sha256"] == sha256_of(archive)
    assert event.details["app_version"] == settings.VERSION
    assert PASSPHRASE not in json.dumps(event.details)


def test_a_directory_gets_a_dated_name_and_an_existing_file_is_never_replaced(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "pass"
    secret.write_text(PASSPHRASE)
    out = io.StringIO()
    call_command("backup", str(tmp_path), passphrase_file=str(secret), stdout=out)
    [written] = tmp_path.glob("convai-admin-*.tar.gz")
    assert written.name.startswith(f"convai-admin-{settings.VERSION}-")
    before = written.read_bytes()
    with pytest.raises(CommandError, match="exists already"):
        call_command("backup", str(written), passphrase_file=str(secret), stdout=out)
    assert written.read_bytes() == before


def test_a_short_passphrase_is_refused_and_nothing_written(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("short\n")
    with pytest.raises(CommandError, match="at least 12 characters"):
        call_command("backup", str(tmp_path / "b.tar.gz"), passphrase_file=str(secret))
    assert not (tmp_path / "b.tar.gz").exists()
    event = AuditEvent.objects.get(action="backup.created")
    assert event.outcome == "failure" and "too short" in event.details["reason"]


def test_the_passphrase_is_never_an_argument_but_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CommandError):
        call_command("backup", str(tmp_path / "a.tar.gz"), "--passphrase", PASSPHRASE)
    monkeypatch.setenv("CONVAI_ADMIN_BACKUP_PASSPHRASE", PASSPHRASE)
    call_command("backup", str(tmp_path / "b.tar.gz"), stdout=io.StringIO())
    assert (tmp_path / "b.tar.gz").exists()


def test_without_a_passphrase_or_a_terminal_the_backup_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVAI_ADMIN_BACKUP_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--passphrase-file"):
        call_command("backup", str(tmp_path / "a.tar.gz"))
    assert not (tmp_path / "a.tar.gz").exists()


def test_pg_dump_is_found_or_named_with_what_to_do(
    tmp_path: Path, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BACKUP_PG_BIN_DIR = str(tmp_path)  # type: ignore[attr-defined]
    with pytest.raises(BackupError, match="pg_dump is not in CONVAI_ADMIN_PG_BIN_DIR"):
        database.pg_tool("pg_dump")
    settings.BACKUP_PG_BIN_DIR = ""  # type: ignore[attr-defined]
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(database.glob, "glob", lambda pattern: [])
    with pytest.raises(BackupError, match=r"pg_dump was not found .* postgresql-client"):
        database.pg_tool("pg_dump")
    monkeypatch.setattr(
        database.glob,
        "glob",
        lambda pattern: ["/usr/lib/postgresql/9/bin/pg_dump", "/usr/lib/postgresql/15/bin/pg_dump"],
    )
    assert database.pg_tool("pg_dump") == "/usr/lib/postgresql/15/bin/pg_dump"


def test_on_postgresql_a_missing_pg_dump_fails_the_backup_cleanly(
    tmp_path: Path, settings: object
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's (DATABASE_URL)")
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "nowhere")  # type: ignore[attr-defined]
    secret = tmp_path / "pass"
    secret.write_text(PASSPHRASE)
    with pytest.raises(CommandError, match="pg_dump is not in CONVAI_ADMIN_PG_BIN_DIR"):
        call_command("backup", str(tmp_path / "b.tar.gz"), passphrase_file=str(secret))
    assert [p.name for p in tmp_path.iterdir()] == ["pass"]
    assert AuditEvent.objects.get(action="backup.created").outcome == "failure"


def test_on_a_terminal_the_passphrase_is_asked_twice_and_must_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVAI_ADMIN_BACKUP_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    answers = iter([PASSPHRASE, PASSPHRASE + " typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(CommandError, match="The two passphrases differ"):
        call_command("backup", str(tmp_path / "a.tar.gz"))
    assert not (tmp_path / "a.tar.gz").exists()
    answers = iter([PASSPHRASE, PASSPHRASE])
    call_command("backup", str(tmp_path / "a.tar.gz"), stdout=io.StringIO())
    assert (tmp_path / "a.tar.gz").exists()
