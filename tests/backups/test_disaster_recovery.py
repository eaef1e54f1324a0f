"""Disaster recovery: a populated install is backed up, restored into a fresh, empty install
(its own var/, a new database, unrelated keys in its environment), and compared — every row,
stored keys that decrypt to the same keys, fingerprints that still match, `audit_verify`.

On the suite's database kind: the SQLite variant runs on SQLite, the PostgreSQL one when
DATABASE_URL is PostgreSQL (a database created and dropped for the fresh install)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from tests.support.characters import Key

from .support import (
    FreshInstall,
    digest,
    dump_rows,
    empty_database,
    make_archive,
    passphrase_file,
    populate,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Rows the restore itself adds or moves (its own event, the chain head, a checkpoint).
MOVED_BY_RESTORE = {"audit.auditchain", "audit.auditcheckpoint"}

# Prints, for each stored key: its ID, the SHA-256 of the decrypted key, and whether the
# fingerprint stored beside it is that key's under the install's fingerprint secret.
KEYS_PROBE = (
    "import hashlib; from keys.models import ApiKey; from keys.services import reveal; "
    "from keys.crypto import fingerprint\n"
    "for k in ApiKey.objects.order_by('pk'):\n"
    "    raw = reveal(k)\n"
    "    print(k.pk, hashlib.sha256(raw.encode()).hexdigest(), fingerprint(raw) == k.fingerprint)"
)


def _comparable(rows: list[dict]) -> list[dict]:
    return [
        row
        for row in rows
        if row["model"] not in MOVED_BY_RESTORE
        and not (
            row["model"] == "audit.auditevent" and row["fields"]["action"] == "backup.restored"
        )
    ]


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
def test_a_backup_restores_into_an_empty_install_whole(
    vendor: str, add_key: Callable[..., Key], tmp_path: Path
) -> None:
    if connection.vendor != vendor:
        pytest.skip(f"the suite runs on {connection.vendor} (DATABASE_URL)")
    world = populate(add_key)
    before = dump_rows()
    archive = make_archive(tmp_path)

    var = tmp_path / "fresh-var"
    with empty_database(var) as database_url:
        fresh = FreshInstall(
            var=var,
            database_url=database_url,
            # Unrelated keys: what the restore proves must come from the archive.
            secrets={
                "CONVAI_ADMIN_ENCRYPTION_KEYS": "other:" + "A" * 43 + "=",
                "CONVAI_ADMIN_AUDIT_KEYS": "other:" + "B" * 43 + "=",
            },
        )
        restored = fresh.manage(
            "restore", str(archive), "--passphrase-file", str(passphrase_file(tmp_path))
        )
        assert restored.returncode == 0, restored.stderr
        assert "Stored API keys: 2 decrypt, 0 do not." in restored.stdout
        assert "Two-factor authenticators: 2 decrypt, 0 do not." in restored.stdout
        assert "Audit chains: 2 of 2 intact." in restored.stdout
        assert "differ from the archive's" in restored.stdout
        assert (var / "restored-secrets.env").stat().st_mode & 0o777 == 0o600

        # Before the operator takes the archive's keys, the chain does not verify here...
        assert fresh.manage("audit_verify").returncode != 0
        # ...with them, it does, and the stored keys are the same keys.
        fresh.take_restored_secrets()
        verified = fresh.manage("audit_verify")
        assert verified.returncode == 0, verified.stderr
        assert "All 2 audit chain(s) are intact." in verified.stdout
        probe = fresh.manage("shell", "--verbosity", "0", "-c", KEYS_PROBE)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split() == [
            str(part)
            for key in sorted(world.keys, key=lambda k: k.pk)
            for part in (key.pk, digest(key.raw), True)
        ]

        dumped = fresh.manage("dumpdata", "--format", "json")
        assert dumped.returncode == 0, dumped.stderr
        after = json.loads(dumped.stdout)
    assert _comparable(after) == _comparable(before)
    counts = {m: sum(1 for r in before if r["model"] == m) for m in {r["model"] for r in before}}
    assert counts["characters.revision"] >= 6 and counts["keys.apikey"] == 2
    restores = [
        row
        for row in after
        if row["model"] == "audit.auditevent" and row["fields"]["action"] == "backup.restored"
    ]
    assert [(r["fields"]["origin"], r["fields"]["target_label"]) for r in restores] == [
        ("command restore", archive.name)
    ]
