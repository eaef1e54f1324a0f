"""What `manage.py restore` refuses, and that a refusal changes nothing: a wrong passphrase,
another app or schema version (before the passphrase is even asked), an altered archive, a
dump of another database kind, a database that holds data (unless --force and its name typed
back). And the one way to replace data: --force, confirmed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.chain import verify_all
from audit.models import AuditEvent
from backups import database
from backups.services import database_label
from teams.models import Team
from tests.factories import MembershipFactory, TeamFactory

from .support import dump_rows, make_archive, passphrase_file, rewrite

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    MembershipFactory(team=TeamFactory(name="Before"))
    return make_archive(tmp_path)


def restore(archive: Path, tmp_path: Path, *, passphrase: str | None = None, **options: Any) -> str:
    secret = passphrase_file(tmp_path, passphrase) if passphrase else passphrase_file(tmp_path)
    out = io.StringIO()
    call_command(
        "restore",
        str(archive),
        passphrase_file=str(secret),
        secrets_file=str(tmp_path / "restored.env"),
        stdout=out,
        **options,
    )
    return out.getvalue()


def refused(archive: Path, tmp_path: Path, match: str, **options: Any) -> None:
    """The restore is refused with `match`, and nothing changed: every row, no secrets file."""
    before = dump_rows()
    with pytest.raises(CommandError, match=match):
        restore(archive, tmp_path, **options)
    assert dump_rows() == before
    assert not (tmp_path / "restored.env").exists()


def forced() -> dict[str, Any]:
    return {"force": True, "confirm": database_label()}


def test_a_wrong_passphrase_is_refused(archive: Path, tmp_path: Path) -> None:
    refused(
        archive, tmp_path, "wrong passphrase", passphrase="not the passphrase at all", **forced()
    )


def test_another_app_version_is_refused_naming_both_and_the_way_there(
    archive: Path, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERSION = "0.2.0"
    # Refused before the passphrase is asked: none is given, and there is no terminal.
    monkeypatch.delenv("CONVAI_ADMIN_BACKUP_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    before = dump_rows()
    with pytest.raises(CommandError) as refusal:
        call_command("restore", str(archive), **forced())
    message = str(refusal.value)
    assert "made by Convai Admin 0.1.0; this install is 0.2.0" in message
    assert "install 0.1.0, restore there, then upgrade to 0.2.0" in message
    assert "docs/backup.md" in message
    assert dump_rows() == before


def test_another_schema_is_refused_naming_the_apps_that_differ(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = database.code_schema()
    monkeypatch.setattr(
        database, "code_schema", lambda: {**ours, "characters": "0099_from_the_future"}
    )
    refused(
        archive,
        tmp_path,
        f"characters: archive {ours['characters']}, this install 0099_from_the_future",
        **forced(),
    )


def test_an_altered_database_member_is_refused(archive: Path, tmp_path: Path) -> None:
    def flip(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.startswith("database."))
        data = bytearray(members[name])
        data[len(data) // 2] ^= 0x01
        members[name] = bytes(data)

    rewrite(archive, flip)
    refused(archive, tmp_path, "does not match the checksum in the manifest", **forced())


def test_an_altered_manifest_is_refused_like_a_wrong_passphrase(
    archive: Path, tmp_path: Path
) -> None:
    def backdate(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["created_at"] = "2020-01-01T00:00:00+00:00"
        members["manifest.json"] = json.dumps(manifest).encode()

    rewrite(archive, backdate)
    refused(archive, tmp_path, "wrong passphrase, or its manifest was altered", **forced())


def test_a_missing_member_and_a_file_that_is_no_archive_are_refused(
    archive: Path, tmp_path: Path
) -> None:
    rewrite(archive, lambda members: members.pop("secrets.bin"))
    refused(archive, tmp_path, "does not hold the files its manifest lists", **forced())
    archive.write_bytes(b"not a tar file")
    refused(archive, tmp_path, "not a readable backup archive", **forced())
    refused(tmp_path / "missing.tar.gz", tmp_path, "There is no file", **forced())


def test_a_dump_of_another_database_kind_is_refused(archive: Path, tmp_path: Path) -> None:
    other = "postgresql" if connection.vendor == "sqlite" else "sqlite"

    def relabel(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["database"] = other
        members["manifest.json"] = json.dumps(manifest).encode()

    rewrite(archive, relabel)
    refused(archive, tmp_path, f"holds a {other} database; this install uses", **forced())


def test_a_database_that_holds_data_is_refused_without_force(archive: Path, tmp_path: Path) -> None:
    refused(archive, tmp_path, "is not empty .* Restore into an empty database")
    refused(archive, tmp_path, "does not match: nothing was restored", force=True, confirm="no")


def test_force_with_the_name_typed_back_replaces_the_data(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TeamFactory(name="After the backup")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: database_label())
    output = restore(archive, tmp_path, force=True)
    assert "Restore complete." in output
    assert list(Team.objects.values_list("name", flat=True)) == ["Before"]
    assert AuditEvent.objects.filter(action="backup.restored").count() == 1
    assert all(report.intact for report in verify_all())
    assert (tmp_path / "restored.env").stat().st_mode & 0o777 == 0o600


def test_a_secrets_file_that_cannot_be_written_stops_the_restore_first(
    archive: Path, tmp_path: Path
) -> None:
    before = dump_rows()
    with pytest.raises(CommandError, match="Cannot write the archive's keys"):
        call_command(
            "restore",
            str(archive),
            passphrase_file=str(passphrase_file(tmp_path)),
            secrets_file=str(tmp_path / "no-such-directory" / "restored.env"),
            stdout=io.StringIO(),
            **forced(),
        )
    assert dump_rows() == before
