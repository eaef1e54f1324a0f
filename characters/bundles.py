"""Portable bundles: the team's characters as one JSON document, and back into a key.

Export: `export_characters` streams a bundle (schema `convai-admin/bundle@1`, see docs/bundles.md)
over an iterator of plain rows, so 10,000 characters take the memory of one. The document is
exactly `json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"` with the
characters ordered by Convai ID, and holds no moment of export: two exports of the same state
are byte-identical and diff cleanly in git (the moment is in the file name and the audit event).

Import: `parse_bundle` refuses a file as a whole (too large, not UTF-8 JSON, too deeply nested,
duplicate keys, another schema, a field of the wrong type or length, one character twice) with
every problem it found, before anything happens. `preview_bundle` says, for one of the member's
keys, what each character would do: be created under the key's account, update the character of
that account with the same Convai ID, or be skipped (already identical here). `start_bundle_import`
runs it as a background job (one item per character) through jobs.services, each character
through the character services (create, import, update), so every change has its revision and
audit event. The validated upload waits in VAR_DIR/bundles/ under a name that binds it to the
member and the team; the job reads it from there (the worker shares VAR_DIR, as it shares the
database) and removes it when every item is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils import timezone
from django_tasks import task

from audit.services import record
from convai_admin.display import natural_key
from jobs import services as jobs
from jobs.models import Job, JobItem
from keys.models import ApiKey
from teams.models import Membership

from . import bulk, services
from .forms import ACTION_MAX, BACKSTORY_MAX, NAME_MAX
from .models import Character
from .remote import differences, fields_from_remote, redact
from .selectors import CharacterFilters, team_characters

logger = logging.getLogger("convai_admin.jobs")

SCHEMA = "convai-admin/bundle@1"
SCHEMA_FAMILY = "convai-admin/bundle@"
MAX_DEPTH = 32
MAX_CHARACTERS = 10_000
MAX_PROBLEMS = 12
KIND = Job.Kind.IMPORT_BUNDLE
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_UPLOAD_TTL_SECONDS = 24 * 3600

# Every key a character of a bundle may have (docs/bundles.md), in the order docs list them.
REQUIRED_KEYS = ("convai_id", "name", "voice_type", "backstory", "actions", "language_codes")
OPTIONAL_KEYS = (
    "snapshot",
    "version",
    "created_at",
    "updated_at",
    "synced_at",
    "pending_language_codes",
    "remote_missing_at",
    "copied_from",
)
_COLUMNS = (
    "convai_id",
    "name",
    "voice_type",
    "backstory",
    "actions",
    "language_codes",
    "snapshot",
    "version",
    "created_at",
    "updated_at",
    "synced_at",
    "pending_language_codes",
    "remote_missing_at",
    "copied_from__convai_id",
    "copied_from_revision",
)


class BundleInvalid(services.CharacterError):
    """The file is not a bundle this version can import; `problems` lists why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            message = f"This file cannot be imported: {problems[0]}"
        else:
            message = f"This file cannot be imported ({len(problems)} problems): " + " ".join(
                problems
            )
        super().__init__(message + " Nothing was changed.")


class UploadGone(services.CharacterError):
    default_message = (
        "That uploaded bundle is no longer here (they are kept for a day). Upload it again."
    )


# --- Export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    filename: str
    count: int
    chunks: Iterator[bytes]


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    copied = row["copied_from__convai_id"]
    return {
        "convai_id": row["convai_id"],
        "name": row["name"],
        "voice_type": row["voice_type"],
        "backstory": row["backstory"],
        "actions": list(row["actions"] or []),
        "language_codes": list(row["language_codes"] or []),
        # Stored redacted already; redacted again so no export can ever carry a secret.
        "snapshot": redact(row["snapshot"] or {}),
        "version": row["version"],
        "created_at": _moment(row["created_at"]),
        "updated_at": _moment(row["updated_at"]),
        "synced_at": _moment(row["synced_at"]),
        "pending_language_codes": row["pending_language_codes"],
        "remote_missing_at": _moment(row["remote_missing_at"]),
        "copied_from": (
            {"convai_id": copied, "revision": row["copied_from_revision"]} if copied else None
        ),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _indented(value: Any, prefix: str) -> str:
    """`value` as it appears nested at `prefix` in the whole document (first line unindented)."""
    return _dumps(value).replace("\n", "\n" + prefix)


def render_bundle(
    entries: Iterable[Mapping[str, Any]], *, team: str, selection: Mapping[str, Any]
) -> Iterator[bytes]:
    """The document, in pieces of about 64 KB, byte for byte what `json.dumps` would make of it
    whole (with sort_keys, indent 2, ensure_ascii off) plus a newline."""
    buffer: list[str] = []
    size = 0
    head = '{\n  "characters": ['
    first = True
    buffer.append(head)
    for entry in entries:
        piece = ("\n    " if first else ",\n    ") + _indented(entry, "    ")
        first = False
        buffer.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    tail = "]" if first else "\n  ]"
    tail += f',\n  "schema": {_dumps(SCHEMA)}'
    tail += f',\n  "selection": {_indented(dict(selection), "  ")}'
    tail += f',\n  "team": {_dumps(team)}\n}}\n'
    buffer.append(tail)
    yield "".join(buffer).encode()


def _selection(filters: CharacterFilters | None, character: Character | None) -> dict[str, Any]:
    if character is not None:
        return {"character": character.convai_id}
    if filters is None:
        return {}
    chosen: dict[str, Any] = {
        "q": filters.q,
        "voice": filters.voice,
        "language": filters.language,
        "key": filters.key,
    }
    selection = {name: value for name, value in chosen.items() if value}
    if filters.unusable:
        selection["unusable"] = True
    return selection


def export_characters(
    *,
    actor: Membership,
    filters: CharacterFilters | None = None,
    character_id: int | None = None,
) -> Export:
    """The team's live characters (all, the list's filter, or one) as a bundle, streamed.
    Audited once, with the count and the selection, before the first byte leaves."""
    character = None
    if character_id is not None:
        character = services.character_for(actor, character_id, live=False)
        services.authorize(actor, "character.export", character)
        queryset: QuerySet[Character] = Character.objects.filter(pk=character.pk)
    else:
        services.authorize(actor, "character.export")
        queryset = Character.objects.filter(
            pk__in=team_characters(actor.team, filters).order_by().values("pk")
        )
    selection = _selection(filters, character)
    rows = queryset.order_by("convai_id", "pk").values(*_COLUMNS)
    count = queryset.count()
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    subject = _slug(character.name) if character is not None else "characters"
    filename = f"{actor.team.slug}-{subject}-{stamp}.json"
    record(
        "character.export",
        actor=actor.user,
        team=actor.team,
        target_type="character" if character is not None else "team",
        target_id=character.convai_id if character is not None else actor.team.slug,
        target_label=character.name if character is not None else actor.team.name,
        details={"count": count, "filter": selection, "filename": filename, "schema": SCHEMA},
    )
    entries = (_entry(row) for row in rows.iterator(chunk_size=500))
    return Export(
        filename, count, render_bundle(entries, team=actor.team.slug, selection=selection)
    )


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:40] or "character"


# --- Validation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCharacter:
    """One character of a bundle, validated: what an import sends to Convai."""

    ordinal: int
    convai_id: str
    name: str
    voice_type: str
    backstory: str
    actions: list[str]
    language_codes: list[str]

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "voice_type": self.voice_type,
            "backstory": self.backstory,
            "actions": list(self.actions),
            "language_codes": list(self.language_codes),
        }


@dataclass(frozen=True)
class Bundle:
    characters: list[BundleCharacter]
    team: str
    sha256: str
    size: int


def max_bytes() -> int:
    return int(getattr(settings, "CONVAI_BUNDLE_MAX_BYTES", 20 * 1024 * 1024))


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _too_large(size: int) -> BundleInvalid:
    return BundleInvalid(
        [
            f"it is {_megabytes(size)}; a bundle may be at most {_megabytes(max_bytes())}. "
            "Export a filtered list instead, or split it."
        ]
    )


def read_upload(upload: UploadedFile) -> Bundle:
    """Validate an uploaded file, refusing an oversized one before reading it."""
    size = upload.size or 0
    if size > max_bytes():
        raise _too_large(size)
    data = b"".join(upload.chunks())
    return parse_bundle(data)


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a bundle")


def _depth(value: Any) -> int:
    """The nesting depth (iteratively: a hostile file cannot exhaust the stack here)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, list):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in current)
    return deepest


def parse_bundle(data: bytes) -> Bundle:
    """A validated bundle, or BundleInvalid naming every problem (up to MAX_PROBLEMS)."""
    if len(data) > max_bytes():
        raise _too_large(len(data))
    if not data.strip():
        raise BundleInvalid(["the file is empty."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BundleInvalid(["it is not UTF-8 text (a bundle is a JSON file)."]) from None
    try:
        document = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except _DuplicateKey as error:
        raise BundleInvalid([f"the key “{error}” appears twice in one object."]) from None
    except RecursionError:
        raise BundleInvalid([f"it is nested more than {MAX_DEPTH} levels deep."]) from None
    except ValueError as error:
        raise BundleInvalid([f"it is not valid JSON ({error})."]) from None
    if _depth(document) > MAX_DEPTH:
        raise BundleInvalid([f"it is nested more than {MAX_DEPTH} levels deep."])
    if not isinstance(document, dict):
        raise BundleInvalid(["it is not a Convai Admin bundle (no “schema”)."])
    schema = document.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
            raise BundleInvalid(
                [f"it was made in format “{schema[:40]}”; this dashboard reads “{SCHEMA}”."]
            )
        raise BundleInvalid([f"it is not a Convai Admin bundle (its “schema” is not “{SCHEMA}”)."])
    problems: list[str] = []
    unknown = sorted(set(document) - {"schema", "characters", "selection", "team"})
    if unknown:
        problems.append(f"unknown top-level key “{unknown[0][:40]}”.")
    team = document.get("team", "")
    if not isinstance(team, str) or len(team) > 100:
        problems.append("“team” must be text of at most 100 characters.")
        team = ""
    if not isinstance(document.get("selection", {}), dict):
        problems.append("“selection” must be an object.")
    raw = document.get("characters")
    if not isinstance(raw, list):
        raise BundleInvalid([*problems, "“characters” must be a list."][:MAX_PROBLEMS])
    if not raw:
        problems.append("it has no characters.")
    if len(raw) > MAX_CHARACTERS:
        problems.append(f"it has {len(raw):,} characters; a bundle may hold {MAX_CHARACTERS:,}.")
    characters: list[BundleCharacter] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(raw[:MAX_CHARACTERS], start=1):
        character = _character(number, item, problems)
        if character is None:
            continue
        if character.convai_id in seen:
            problems.append(
                f"Character {number}: Convai ID {character.convai_id} is also character "
                f"{seen[character.convai_id]}."
            )
            continue
        seen[character.convai_id] = number
        characters.append(character)
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append("(and more)")
        raise BundleInvalid(shown)
    return Bundle(characters, team, hashlib.sha256(data).hexdigest(), len(data))


def _text(value: Any, *, limit: int, required: bool = False) -> str | None:
    """The text, or None when it is not acceptable (not text, too long, a NUL byte)."""
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        return None
    if required and not value.strip():
        return None
    return value


def _character(number: int, item: Any, problems: list[str]) -> BundleCharacter | None:
    where = f"Character {number}"
    if not isinstance(item, dict):
        problems.append(f"{where} is not an object.")
        return None
    name_value = item.get("name")
    if isinstance(name_value, str) and name_value.strip():
        where = f"Character {number} (“{name_value.strip()[:40]}”)"
    before = len(problems)
    missing = [key for key in REQUIRED_KEYS if key not in item]
    if missing:
        problems.append(f"{where} has no “{missing[0]}”.")
        return None
    unknown = sorted(set(item) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        problems.append(f"{where} has an unknown key “{unknown[0][:40]}”.")
    convai_id = item["convai_id"]
    if not isinstance(convai_id, str) or not _ID.match(convai_id):
        problems.append(f"{where}: “convai_id” must be 1 to 64 letters, digits, - or _.")
    name = _text(item["name"], limit=NAME_MAX, required=True)
    if name is None:
        problems.append(f"{where}: “name” must be text of 1 to {NAME_MAX} characters.")
    voice_type = _text(item["voice_type"], limit=255)
    if voice_type is None:
        problems.append(f"{where}: “voice_type” must be text of at most 255 characters.")
    backstory = _text(item["backstory"], limit=BACKSTORY_MAX)
    if backstory is None:
        problems.append(
            f"{where}: “backstory” must be text of at most {BACKSTORY_MAX:,} characters."
        )
    actions = item["actions"]
    if (
        not isinstance(actions, list)
        or len(actions) > 100
        or not all(_text(a, limit=ACTION_MAX, required=True) is not None for a in actions)
        or any("," in a for a in actions)
    ):
        problems.append(
            f"{where}: “actions” must be a list of at most 100 texts of 1 to {ACTION_MAX} "
            "characters, without commas."
        )
    codes = item["language_codes"]
    if (
        not isinstance(codes, list)
        or len(codes) > 50
        or not all(isinstance(c, str) and _LANGUAGE.match(c) for c in codes)
    ):
        problems.append(f"{where}: “language_codes” must be a list of language codes (en-US).")
    _optional(where, item, problems)
    if len(problems) > before:
        return None
    assert isinstance(convai_id, str) and name is not None and voice_type is not None
    assert backstory is not None
    return BundleCharacter(
        ordinal=number,
        convai_id=convai_id,
        name=name.strip(),
        voice_type=voice_type.strip(),
        backstory=backstory,
        actions=[a.strip() for a in actions],
        language_codes=list(codes),
    )


def _optional(where: str, item: dict[str, Any], problems: list[str]) -> None:
    """The informative keys are not imported, but a wrong type still means a wrong file."""
    if not isinstance(item.get("snapshot", {}), dict):
        problems.append(f"{where}: “snapshot” must be an object.")
    version = item.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        problems.append(f"{where}: “version” must be a whole number.")
    for key in ("created_at", "updated_at", "synced_at", "remote_missing_at"):
        value = item.get(key)
        if value is not None and _text(value, limit=40) is None:
            problems.append(f"{where}: “{key}” must be a date and time, or null.")
    pending = item.get("pending_language_codes")
    if pending is not None and not (
        isinstance(pending, list) and all(isinstance(c, str) and len(c) <= 16 for c in pending)
    ):
        problems.append(f"{where}: “pending_language_codes” must be a list of codes, or null.")
    copied = item.get("copied_from")
    if copied is not None and not (
        isinstance(copied, dict)
        and isinstance(copied.get("convai_id"), str)
        and len(copied["convai_id"]) <= 64
    ):
        problems.append(f"{where}: “copied_from” must be an object with a “convai_id”, or null.")


# --- Uploads waiting for confirmation ------------------------------------------------------------


def _upload_dir() -> Path:
    directory = Path(settings.VAR_DIR) / "bundles"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _upload_path(actor: Membership, token: str) -> Path:
    if not _TOKEN.match(token):
        raise UploadGone()
    return _upload_dir() / f"t{actor.team_id}-u{actor.user_id}-{token}.json"


def save_upload(*, actor: Membership, data: bytes, filename: str) -> str:
    """Keep a validated upload until it is confirmed (for a day); its token names it for this
    member in this team only."""
    services.authorize(actor, "character.import")
    _forget_old_uploads()
    token = secrets.token_urlsafe(24)
    path = _upload_path(actor, token)
    path.write_bytes(data)
    path.with_suffix(".name").write_text(filename[:200], encoding="utf-8")
    return token


def load_upload(*, actor: Membership, token: str) -> tuple[Bundle, str]:
    """The upload behind a token (validated again), and its original file name."""
    path = _upload_path(actor, token)
    try:
        data = path.read_bytes()
        name_file = path.with_suffix(".name")
        filename = name_file.read_text(encoding="utf-8") if name_file.exists() else path.name
    except FileNotFoundError:
        raise UploadGone() from None
    return parse_bundle(data), filename


def discard_upload(*, actor: Membership, token: str) -> None:
    path = _upload_path(actor, token)
    path.unlink(missing_ok=True)
    path.with_suffix(".name").unlink(missing_ok=True)


def _forget_old_uploads() -> None:
    cutoff = time.time() - _UPLOAD_TTL_SECONDS
    for path in _upload_dir().iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except OSError:
            continue


# --- Preview -------------------------------------------------------------------------------------


class Plan:
    CREATE = "create"
    UPDATE = "update"
    SKIP = "skip"


@dataclass(frozen=True)
class PreviewRow:
    entry: BundleCharacter
    plan: str
    reason: str
    changed: tuple[str, ...] = ()
    local_id: int | None = None


@dataclass(frozen=True)
class BundlePreview:
    api_key: ApiKey
    rows: list[PreviewRow] = field(default_factory=list)

    def count(self, plan: str) -> int:
        return sum(1 for row in self.rows if row.plan == plan)

    @property
    def creates(self) -> int:
        return self.count(Plan.CREATE)

    @property
    def updates(self) -> int:
        return self.count(Plan.UPDATE)

    @property
    def skips(self) -> int:
        return self.count(Plan.SKIP)

    @property
    def work(self) -> int:
        return self.creates + self.updates


def _plan(
    entry: BundleCharacter,
    owned: Mapping[str, Any],
    local: Mapping[str, Character],
) -> PreviewRow:
    remote = owned.get(entry.convai_id)
    if remote is None:
        return PreviewRow(entry, Plan.CREATE, "New under this key's account.")
    mine = local.get(entry.convai_id)
    known = fields_from_remote(remote)
    if known.get("backstory") is None and mine is not None:
        known["backstory"] = mine.backstory  # Convai's list has no backstories
    changes = differences(known, entry.fields())
    labels = tuple(change.label for change in changes)
    if mine is None:
        return PreviewRow(
            entry,
            Plan.UPDATE,
            "Owned by this key's account; it joins this team"
            + (" and is updated." if changes else "."),
            labels,
        )
    if not changes:
        return PreviewRow(entry, Plan.SKIP, "Already identical.", (), mine.pk)
    return PreviewRow(entry, Plan.UPDATE, "Updated in place.", labels, mine.pk)


def _owned(actor: Membership, api_key: ApiKey) -> dict[str, Any]:
    """The key's account's characters by Convai ID (one `list` call)."""
    return {item.character_id: item for item in bulk._key_characters(actor, api_key)}


def _local(actor: Membership, ids: Iterable[str]) -> dict[str, Character]:
    return {
        character.convai_id: character
        for character in Character.objects.filter(
            team=actor.team, deleted_at__isnull=True, convai_id__in=list(ids)
        )
    }


def preview_bundle(*, actor: Membership, api_key_id: UUID | str, bundle: Bundle) -> BundlePreview:
    """What importing the bundle with this key would do, character by character."""
    services.authorize(actor, "character.import")
    api_key = services.own_key("character.import", actor, api_key_id, label="bundle import")
    owned = _owned(actor, api_key)
    local = _local(actor, (entry.convai_id for entry in bundle.characters))
    rows = [_plan(entry, owned, local) for entry in bundle.characters]
    order = {Plan.CREATE: 0, Plan.UPDATE: 1, Plan.SKIP: 2}
    rows.sort(key=lambda row: (order[row.plan], natural_key(row.entry.name), row.entry.convai_id))
    return BundlePreview(api_key, rows)


# --- Apply (a background job) --------------------------------------------------------------------


def start_bundle_import(
    *, actor: Membership, api_key_id: UUID | str, token: str, skip: Iterable[str] = ()
) -> Job:
    """Queue the bundle's creates and updates (previewed again now, so what was identical is
    still skipped); `skip` leaves out characters the member unticked."""
    bundle, filename = load_upload(actor=actor, token=token)
    preview = preview_bundle(actor=actor, api_key_id=api_key_id, bundle=bundle)
    unticked = set(skip)
    items = [
        jobs.NewItem(label=row.entry.name, target_id=row.entry.convai_id, local_id=row.local_id)
        for row in sorted(preview.rows, key=lambda row: row.entry.ordinal)
        if row.plan != Plan.SKIP and row.entry.convai_id not in unticked
    ]
    if not items:
        raise services.CharacterError(
            "Nothing to import: every character of the bundle is already identical here, or "
            "you left them all out."
        )
    job = jobs.start_job(
        actor=actor,
        kind=KIND,
        scope=jobs.key_scope(preview.api_key),
        task=import_bundle,
        items=items,
        api_key=preview.api_key,
        params={
            "bundle": token,
            "filename": filename,
            "sha256": bundle.sha256,
            "characters": len(bundle.characters),
            "skipped": len(bundle.characters) - len(items),
        },
    )
    record(
        "character.import_bundle",
        actor=actor.user,
        team=actor.team,
        target_type="job",
        target_id=job.pk,
        target_label=filename,
        details={
            "phase": "start",
            "job": job.pk,
            "filename": filename,
            "sha256": bundle.sha256,
            "create": preview.creates,
            "update": preview.updates,
            "skip": preview.skips + len(unticked),
            "key_used": services.key_label(preview.api_key),
        },
    )
    return job


def _bundle_body(run: jobs.JobRun) -> None:
    job, actor = run.job, run.actor
    services.authorize(actor, "character.import")
    if job.api_key_id is None:
        raise jobs.JobError("The API key of this import was deleted.")
    token = str(job.params.get("bundle", ""))
    try:
        bundle, filename = load_upload(actor=actor, token=token)
    except services.CharacterError as error:
        raise jobs.JobError(error.message) from None
    if bundle.sha256 != job.params.get("sha256"):
        raise jobs.JobError("The uploaded bundle changed since the import was confirmed.")
    api_key = services.own_key("character.import", actor, job.api_key_id, label=filename)
    entries = {entry.convai_id: entry for entry in bundle.characters}
    try:
        owned = _owned(actor, api_key)
    except services.CharacterError as error:
        raise jobs.JobError(error.message) from None
    for item in list(run.pending()):
        if run.should_stop():
            break
        entry = entries.get(item.target_id)
        if entry is None:
            run.record_item(item, JobItem.State.FAILED, "Not in the bundle any more.")
            continue
        try:
            state, message, local_id = _apply_one(run, api_key, entry, owned)
        except services.CharacterError as error:  # recorded by the service that refused
            run.record_item(item, JobItem.State.FAILED, error.message)
            continue
        except Exception:
            logger.exception("Bundle import %s: %s failed unexpectedly", job.pk, item.target_id)
            run.record_item(item, JobItem.State.FAILED, "An unexpected error stopped this item.")
            continue
        run.record_item(item, state, message, local_id=local_id)
    run.should_stop(force=True)
    _finished(run, filename, token)


def _finished(run: jobs.JobRun, filename: str, token: str) -> None:
    job = run.job
    if run.lost or run.pending().exists():
        return  # cancelled or taken over: the upload stays for a resume
    job.refresh_from_db(fields=["done", "skipped", "failed"])
    discard_upload(actor=run.actor, token=token)
    record(
        "character.import_bundle",
        actor=run.actor.user,
        team=job.team,
        target_type="job",
        target_id=job.pk,
        target_label=filename,
        details={"phase": "finish", "job": job.pk, **jobs.counts(job)},
    )


def _apply_one(
    run: jobs.JobRun, api_key: ApiKey, entry: BundleCharacter, owned: Mapping[str, Any]
) -> tuple[str, str, int | None]:
    """One character through the services: (item state, message, local character)."""
    actor = run.actor
    if entry.convai_id not in owned:
        if run.number > 1:
            earlier = _created_by_earlier_run(run, api_key, entry)
            if earlier is not None:
                return JobItem.State.DONE, "Created (by the run before the resume).", earlier.pk
        saved = services.create_character(actor=actor, api_key_id=api_key.pk, **entry.fields())
        message = "Created."
        if saved.warnings:
            message += " " + " ".join(saved.warnings)
        return JobItem.State.DONE, message, saved.character.pk
    character = Character.objects.filter(
        team=actor.team, convai_id=entry.convai_id, deleted_at__isnull=True
    ).first()
    joined = character is None
    if character is None:
        character = services.import_character(
            actor=actor, api_key_id=api_key.pk, convai_id=entry.convai_id
        ).character
    changes = differences(character.editable(), entry.fields())
    if not changes:
        if joined:
            return JobItem.State.DONE, "Added to this team (already identical).", character.pk
        return JobItem.State.SKIPPED, "Already identical.", character.pk
    saved = services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={change.field: getattr(entry, change.field) for change in changes},
        overwrite_drift=True,
    )
    labels = ", ".join(change.label for change in changes)
    prefix = "Added to this team and updated" if joined else "Updated"
    return JobItem.State.DONE, f"{prefix}: {labels}.", saved.character.pk


def _created_by_earlier_run(
    run: jobs.JobRun, api_key: ApiKey, entry: BundleCharacter
) -> Character | None:
    """A resumed job must not create twice a character the dead run created just before it
    died (the create committed, the item's result did not)."""
    return (
        Character.objects.filter(
            team=run.actor.team,
            bound_key=api_key,
            name=entry.name,
            created_by=run.actor.user,
            created_at__gte=run.job.started_at or run.job.created_at,
            deleted_at__isnull=True,
        )
        .exclude(pk__in=run.job.items.exclude(local_id=None).values("local_id"))
        .order_by("-created_at")
        .first()
    )


@task()
def import_bundle(job_id: int) -> str:
    """Create or update each character of an uploaded bundle under the job's key."""
    return jobs.run_job(job_id, _bundle_body)
