"""The archive: one tar file holding a manifest, the database dump and the sealed secrets.

    manifest.json   format, app and schema versions, the database's vendor, the KDF's
                    parameters, and the SHA-256 and size of every other member
    database.*      the dump (SQLite: a database file; PostgreSQL: pg_dump's custom format)
    secrets.bin     the keyrings, AES-256-GCM under a key derived from the passphrase (scrypt)

The secrets' associated data is the manifest itself (without the secrets' own checksum), so
opening them with the passphrase also proves the manifest, and through its checksums every
member, is as it was written: a wrong passphrase and an edited manifest fail the same way. The
library's primitives only (design.md: no hand-rolled crypto): scrypt and AESGCM from
`cryptography`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.views.decorators.debug import sensitive_variables

from .errors import BackupError

FORMAT = "convai-admin-backup/1"
MANIFEST = "manifest.json"
SECRETS = "secrets.bin"
# scrypt's cost: 2**17 x 8 x 1 takes 128 MB and 0.7 s here (OWASP's floor is 2**17); the
# parameters travel in the manifest, so they can rise without breaking old archives.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as the secrets' associated data: everything but the secrets' checksum (the
    checksum of the very ciphertext this data authenticates)."""
    members = {k: v for k, v in manifest["members"].items() if k != SECRETS}
    body = {**manifest, "members": members}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@sensitive_variables()
def _derive(passphrase: str, kdf: Mapping[str, Any]) -> bytes:
    salt = bytes.fromhex(str(kdf["salt"]))
    return Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(
        passphrase.encode("utf-8")
    )


@dataclass(frozen=True)
class Member:
    """A file to put in the archive under `name`."""

    name: str
    path: Path


@sensitive_variables()
def write_archive(
    destination: Path,
    *,
    manifest: dict[str, Any],
    members: list[Member],
    secrets: Mapping[str, str],
    passphrase: str,
) -> str:
    """Write the archive atomically (a 0600 temporary file in the same directory, renamed into
    place) and return its SHA-256. `manifest` gets the members' checksums and the KDF."""
    kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    kdf["salt"] = os.urandom(SALT_BYTES).hex()
    manifest = {
        **manifest,
        "format": FORMAT,
        "kdf": kdf,
        "cipher": "AES-256-GCM",
        "members": {
            m.name: {"sha256": sha256_of(m.path), "size": m.path.stat().st_size} for m in members
        },
    }
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(_derive(passphrase, kdf)).encrypt(
        nonce, json.dumps(dict(secrets)).encode(), _canonical(manifest)
    )
    manifest["members"][SECRETS] = {
        "sha256": hashlib.sha256(sealed).hexdigest(),
        "size": len(sealed),
    }
    destination = destination.resolve()
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".part", dir=destination.parent
    )
    os.close(handle)  # mkstemp made it 0600
    try:
        # zlib's default level: as small as level 9 on a dump (41.2 vs 41.0 MB), 15% faster.
        with tarfile.open(temporary, "w:gz", compresslevel=6) as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
            for member in members:
                tar.add(member.path, arcname=member.name, recursive=False, filter=_anonymous)
            _add_bytes(tar, SECRETS, sealed)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sha256_of(destination)


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _anonymous(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class OpenedArchive:
    """An archive unpacked into `directory` whose members all match the manifest's checksums
    (the manifest itself is proved only by `open_secrets`)."""

    path: Path
    directory: Path
    manifest: dict[str, Any]

    def member(self, name: str) -> Path:
        return self.directory / name

    @sensitive_variables()
    def open_secrets(self, passphrase: str) -> dict[str, str]:
        sealed = self.member(SECRETS).read_bytes()
        try:
            key = _derive(passphrase, self.manifest["kdf"])
            plain = AESGCM(key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _canonical(self.manifest)
            )
        except (InvalidTag, KeyError, ValueError, TypeError):
            raise BackupError(
                f"Cannot open {self.path.name}: wrong passphrase, or its manifest was altered. "
                "Nothing was restored."
            ) from None
        secrets = json.loads(plain)
        return {str(k): str(v) for k, v in secrets.items()}


def open_archive(path: Path, directory: Path) -> OpenedArchive:
    """Unpack `path` into `directory` (which the caller owns and removes) and check every
    member against the manifest. Refuses anything that is not our archive, or was altered."""
    name = path.name
    try:
        with tarfile.open(path, "r:*") as tar:
            manifest = _read_manifest(tar, name)
            expected = set(manifest["members"])
            present = {m.name for m in tar.getmembers()} - {MANIFEST}
            if present != expected:
                raise BackupError(
                    f"{name} does not hold the files its manifest lists "
                    f"(missing: {sorted(expected - present)}, extra: {sorted(present - expected)})."
                )
            tar.extractall(
                directory, members=[tar.getmember(n) for n in sorted(expected)], filter="data"
            )
    except FileNotFoundError:
        raise BackupError(f"There is no file {path}.") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BackupError(f"{name} is not a readable backup archive ({error}).") from None
    for member, facts in sorted(manifest["members"].items()):
        if sha256_of(directory / member) != facts["sha256"]:
            raise BackupError(
                f"{name}: {member} does not match the checksum in the manifest: the archive "
                "was altered or damaged. Nothing was restored; use another copy."
            )
    return OpenedArchive(path=path, directory=directory, manifest=manifest)


def _read_manifest(tar: tarfile.TarFile, name: str) -> dict[str, Any]:
    try:
        handle = tar.extractfile(MANIFEST)
    except KeyError:
        handle = None
    if handle is None:
        raise BackupError(f"{name} is not a Convai Admin backup (it has no {MANIFEST}).")
    try:
        manifest = json.loads(handle.read())
    except ValueError:
        raise BackupError(f"{name}: its {MANIFEST} is not valid JSON.") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise BackupError(
            f"{name} is not a backup this version can read (format {found!r}, expected {FORMAT!r})."
        )
    if not isinstance(manifest.get("members"), dict) or SECRETS not in manifest["members"]:
        raise BackupError(f"{name}: its {MANIFEST} lists no sealed secrets.")
    for member in manifest["members"]:
        if "/" in member or member.startswith(".") or member == MANIFEST:
            raise BackupError(f"{name}: its {MANIFEST} names an unexpected member {member!r}.")
    return manifest
