"""Helpers of the backup tests: a populated install made through the real services (keys
verified against the live sandbox over HTTP), archives made through the command, a fresh
install (its own var/ and an empty database) driven through `manage.py` in a child process."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.core.management import call_command
from django.db import connection

from characters import services as characters
from teams import invitations
from teams.models import Membership, Role, Team
from tests.accounts.mfa_support import enable_totp
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import BACKSTORY, Key
from tests.support.manage import PROD_ENV, run_manage

PASSPHRASE = "correct horse battery staple 42"


@dataclass
class Populated:
    team: Team
    owner: Membership
    editor: Membership
    keys: list[Key]


def populate(add_key: Callable[..., Key]) -> Populated:
    """A team with members, two verified keys, characters with several revisions, an
    invitation, an Owner with an authenticator app and recovery codes: every one through its
    service, so the audit log holds their events."""
    team = TeamFactory(name="Studio North", slug="studio-north")
    owner = MembershipFactory(team=team, role=Role.OWNER)
    editor = MembershipFactory(team=team, role=Role.EDITOR)
    MembershipFactory(team=team, role=Role.VIEWER)
    keys = [add_key(editor, "Editor key"), add_key(owner, "Owner key")]
    for number, key in enumerate(keys, start=1):
        actor = editor if key is keys[0] else owner
        saved = characters.create_character(
            actor=actor,
            api_key_id=key.pk,
            name=f"Raymond {number}",
            voice_type="MALE",
            backstory=BACKSTORY,
            actions=["Wave"],
            language_codes=[],
        )
        character = saved.character
        for edit in ("A tavern keeper.", "A retired tavern keeper."):
            character = characters.update_character(
                actor=actor,
                character_id=character.pk,
                expected_version=character.version,
                fields={"backstory": edit},
            ).character
    invitations.create_invitation(actor=owner, role=Role.VIEWER)
    enable_totp(owner.user)
    return Populated(team=team, owner=owner, editor=editor, keys=keys)


def passphrase_file(directory: Path, text: str = PASSPHRASE) -> Path:
    path = directory / "passphrase"
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def make_archive(directory: Path, passphrase: str = PASSPHRASE) -> Path:
    """An archive of the test database through `manage.py backup`."""
    destination = directory / "backup.tar.gz"
    secret = directory / "backup-passphrase"
    secret.write_text(passphrase + "\n", encoding="utf-8")
    call_command("backup", str(destination), passphrase_file=str(secret), stdout=io.StringIO())
    return destination


def members_of(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def rewrite(archive: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Rewrite the archive with `change` applied to its members' bytes (a tamperer's edit)."""
    members = members_of(archive)
    change(members)
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def manifest_of(archive: Path) -> dict[str, Any]:
    return json.loads(members_of(archive)["manifest.json"])


def dump_rows() -> list[dict[str, Any]]:
    """Every row of the database as dumpdata writes it, in a stable order."""
    out = io.StringIO()
    call_command("dumpdata", format="json", stdout=out)
    return json.loads(out.getvalue())


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- A fresh install ------------------------------------------------------------------------


@contextmanager
def empty_database(var: Path) -> Iterator[str]:
    """A new, empty database of the suite's kind: a new SQLite file in the fresh var/, or a
    new PostgreSQL database (created here, dropped afterwards). Yields its DATABASE_URL."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{var / 'db.sqlite3'}"
        return
    db = connection.settings_dict
    name = f"backup_dr_{uuid.uuid4().hex[:12]}"
    host, port = str(db.get("HOST") or "127.0.0.1"), str(db.get("PORT") or 5432)
    user, password = str(db.get("USER") or "postgres"), str(db.get("PASSWORD") or "")
    params: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": user,
        "password": password or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        auth = user + (f":{password}" if password else "")
        yield f"postgres://{auth}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(**params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class FreshInstall:
    """Another install of the same version: its own var/, database and (unrelated) keys."""

    var: Path
    database_url: str
    secrets: dict[str, str]

    def manage(self, *args: str) -> Any:
        env = {
            **PROD_ENV,
            "CONVAI_ADMIN_VAR_DIR": str(self.var),
            "DATABASE_URL": self.database_url,
            **self.secrets,
        }
        return run_manage(*args, env=env)

    def take_restored_secrets(self) -> None:
        """What the operator does after a restore: the service's environment gets the
        archive's keys from the file the restore wrote."""
        text = (self.var / "restored-secrets.env").read_text(encoding="utf-8")
        for line in text.splitlines():
            name, _, value = line.partition("=")
            self.secrets[name] = shlex.split(value)[0] if value else ""
