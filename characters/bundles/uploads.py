"""Uploads waiting for confirmation.

A validated upload waits in VAR_DIR/bundles/ as t<team>-u<user>-<token>.json (+ .name, the
original file name) until it is confirmed and its job is done, for a day at most. Each member
has at most one pending upload per team (a new one replaces it; one a job reads is kept), the
directory as a whole stays under CONVAI_BUNDLE_STORAGE_MAX_BYTES, and a member may upload
CONVAI_BUNDLE_UPLOADS_PER_WINDOW files per CONVAI_BUNDLE_UPLOAD_WINDOW_SECONDS (counted in
the audit log, so every web process sees the same count). The job reads the upload from there
(the worker shares VAR_DIR, as it shares the database) and removes it when every item is done.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from audit.services import record
from convai_admin.validators import BIDI_CONTROLS
from jobs.models import Job
from teams.models import Membership

from .. import errors, operations
from .reading import read_upload, validate_file
from .schema import Bundle, BundleInvalid, megabytes

UPLOAD_ACTION = "character.bundle_upload"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")

# The job kind that reads an upload (its bundle import; registered in characters/job_kinds.py).
KIND = "import_bundle"


class UploadGone(errors.CharacterError):
    default_message = (
        "That uploaded bundle is no longer here (they are kept for a day). Upload it again."
    )


class UploadRefused(errors.CharacterError):
    """A valid request this install will not take now (quota, rate); `reason` for the audit."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    token: str
    bundle: Bundle
    filename: str


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def upload_ttl_seconds() -> int:
    return _setting("CONVAI_BUNDLE_UPLOAD_TTL_SECONDS", 24 * 3600)


def storage_max_bytes() -> int:
    return _setting("CONVAI_BUNDLE_STORAGE_MAX_BYTES", 200 * 1024 * 1024)


def _upload_dir() -> Path:
    directory = Path(settings.VAR_DIR) / "bundles"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _prefix(actor: Membership) -> str:
    return f"t{actor.team_id}-u{actor.user_id}-"


def _upload_path(actor: Membership, token: str) -> Path:
    if not _TOKEN.fullmatch(token):
        raise UploadGone()
    return _upload_dir() / f"{_prefix(actor)}{token}.json"


class _Locked:
    """An exclusive lock on the uploads directory (across processes of this host), so the
    quota check and the write that relies on it are one step."""

    def __enter__(self) -> Path:
        directory = _upload_dir()
        self._file = open(directory / ".lock", "a+b")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return directory

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def _filename(name: str | None) -> str:
    """The uploaded file's name as a label: one line of printable text."""
    text = "".join(c for c in (name or "") if c.isprintable() and c not in BIDI_CONTROLS)
    return text.strip()[:200] or "bundle.json"


def upload_bundle(*, actor: Membership, api_key_id: UUID | str, upload: UploadedFile) -> Upload:
    """Validate an uploaded bundle and keep it for its preview and confirmation.

    Refused, with nothing kept: a member over the upload rate, a file too large or invalid
    (BundleInvalid, with every problem), an install whose bundle storage is full. Each refusal
    is audited once (`character.bundle_upload`, reason, size, SHA-256, never the content), as is
    the accepted upload. The member's previous pending upload in this team is replaced."""
    operations.authorize(actor=actor, action="character.import")
    filename = _filename(upload.name)
    # The chosen key must be the member's own (a swapped ID is refused and recorded).
    operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label=filename
    )
    size = upload.size or 0
    try:
        _check_rate(actor)
        bundle = read_upload(upload)
        token = _keep(actor, upload, bundle, filename)
    except BundleInvalid as error:
        _refused(actor, filename, Outcome.FAILURE, error.reason, error.size or size, error.sha256)
        raise
    except UploadRefused as error:
        _refused(actor, filename, Outcome.DENIED, error.reason, size, None)
        raise
    record(
        UPLOAD_ACTION,
        actor=actor.user,
        team=actor.team,
        target_type="bundle",
        target_id=bundle.sha256[:16],
        target_label=filename,
        details={
            "filename": filename,
            "size": bundle.size,
            "sha256": bundle.sha256,
            "characters": len(bundle.characters),
        },
    )
    return Upload(token, bundle, filename)


def _refused(
    actor: Membership, filename: str, outcome: str, reason: str, size: int, sha256: str | None
) -> None:
    record(
        UPLOAD_ACTION,
        actor=actor.user,
        team=actor.team,
        target_type="bundle",
        target_id=(sha256 or "")[:16],
        target_label=filename,
        outcome=outcome,
        details={"filename": filename, "reason": reason, "size": size, "sha256": sha256},
    )


def _check_rate(actor: Membership) -> None:
    limit = _setting("CONVAI_BUNDLE_UPLOADS_PER_WINDOW", 10)
    window = _setting("CONVAI_BUNDLE_UPLOAD_WINDOW_SECONDS", 600)
    since = timezone.now() - timedelta(seconds=window)
    recent = (
        AuditEvent.objects.filter(
            team=actor.team, actor=actor.user, action=UPLOAD_ACTION, created_at__gte=since
        )
        .exclude(outcome=Outcome.DENIED)
        .count()
    )
    if recent >= limit:
        minutes = max(1, round(window / 60))
        raise UploadRefused(
            f"You have uploaded {recent} bundles in the last {minutes} minutes, the most this "
            f"server takes. Try again in a few minutes. Nothing was kept.",
            reason="rate_limited",
        )


def _in_use(directory: Path, actor: Membership) -> set[str]:
    """Tokens of this member's uploads that a job of this team still reads."""
    tokens = [
        path.stem[len(_prefix(actor)) :] for path in directory.glob(f"{_prefix(actor)}*.json")
    ]
    if not tokens:
        return set()
    jobs_params = Job.objects.filter(
        team_id=actor.team_id, kind=KIND, params__bundle__in=tokens
    ).values_list("params", flat=True)
    return {str(params.get("bundle")) for params in jobs_params}


def _keep(actor: Membership, upload: UploadedFile, bundle: Bundle, filename: str) -> str:
    prune_expired_uploads()
    token = secrets.token_urlsafe(24)
    with _Locked() as directory:
        in_use = _in_use(directory, actor)
        replaced = [
            path
            for path in directory.glob(f"{_prefix(actor)}*")
            if path.stem[len(_prefix(actor)) :] not in in_use
        ]
        used = sum(
            path.stat().st_size
            for path in directory.iterdir()
            if path.is_file() and path not in replaced and path.name != ".lock"
        )
        if used + bundle.size > storage_max_bytes():
            raise UploadRefused(
                f"The server's space for bundles waiting to be imported is full "
                f"({megabytes(used)} of {megabytes(storage_max_bytes())} in use). Try again "
                "later: waiting uploads are removed once imported, or after a day. An "
                "administrator can raise CONVAI_BUNDLE_STORAGE_MAX_BYTES. Nothing was kept.",
                reason="storage_full",
            )
        path = _upload_path(actor, token)
        part_file = path.with_suffix(".part")
        try:
            with open(part_file, "wb") as out:
                upload.seek(0)
                for chunk in upload.chunks():
                    out.write(chunk)
            os.replace(part_file, path)
            path.with_suffix(".name").write_text(filename, encoding="utf-8")
        finally:
            part_file.unlink(missing_ok=True)
        for old in replaced:
            old.unlink(missing_ok=True)
    return token


def load_upload(*, actor: Membership, token: str) -> tuple[Bundle, str]:
    """The upload behind a token (validated again, streamed from disk), and its file name."""
    path = _upload_path(actor, token)
    try:
        with open(path, "rb") as stream:
            bundle = validate_file(stream)
        name_file = path.with_suffix(".name")
        filename = name_file.read_text(encoding="utf-8") if name_file.exists() else path.name
    except FileNotFoundError:
        raise UploadGone() from None
    return bundle, filename


def discard_upload(*, actor: Membership, token: str) -> None:
    path = _upload_path(actor, token)
    path.unlink(missing_ok=True)
    path.with_suffix(".name").unlink(missing_ok=True)


def prune_expired_uploads() -> str:
    """One pass of the periodic clean-up: remove uploads older than the upload lifetime
    (CONVAI_BUNDLE_UPLOAD_TTL_SECONDS), confirmed or not. Returns a one-line summary."""
    cutoff = time.time() - upload_ttl_seconds()
    removed = kept = freed = 0
    for path in _upload_dir().iterdir():
        if path.name == ".lock":
            continue
        try:
            stat = path.stat()
            if stat.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
                freed += stat.st_size
            else:
                kept += 1
        except OSError:
            continue
    return (
        f"Removed {removed} expired bundle upload file{'s' * (removed != 1)} "
        f"({megabytes(freed)}); {kept} kept."
    )
