"""Portable bundles: the team's characters as one JSON document, and back into a key.

Export: `export_characters` streams a bundle (schema `convai-admin/bundle@1`, see docs/bundles.md)
over an iterator of plain rows, so 10,000 characters take the memory of one. The document is
exactly `json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"` with the
characters ordered by Convai ID, and holds no moment of export: two exports of the same state
are byte-identical and diff cleanly in git (the moment is in the file name and the audit event).

Import: `upload_bundle` (the import page's service) validates the file as a stream
(`validate_file`, bounded memory) and refuses it as a whole (too large, not UTF-8 JSON, too
deeply nested or too many values, duplicate keys, another schema, a field the character form
would refuse: characters/validation.py, one character twice) with every problem it found, before
anything happens; it keeps one pending upload per member and team within a storage quota and an
upload rate, and audits every upload and refusal. `preview_bundle` says, for one of the member's
keys, what each character would do: be created under the key's account, update the character of
that account with the same Convai ID, or be skipped (already identical here).
`start_bundle_import` runs it as a background job (one item per character) through
jobs.services, each character through the character services (create, import, update), so every
change has its revision and audit event. The validated upload waits in VAR_DIR/bundles/ under a
name that binds it to the member and the team; the job reads it from there (the worker shares
VAR_DIR, as it shares the database) and removes it when every item is done.
"""

from __future__ import annotations

import codecs
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, NoReturn
from uuid import UUID

import ijson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils import timezone
from django_tasks import task

from audit.models import AuditEvent, Outcome
from audit.services import record
from convai_admin.display import natural_key
from convai_admin.validators import BIDI_CONTROLS
from jobs import services as jobs
from jobs.models import Job, JobItem
from keys.models import ApiKey
from teams.models import Membership

from . import bulk, errors, importing, operations, selectors, services, validation
from .models import Character
from .remote import differences, fields_from_remote, redact
from .selectors import CharacterFilters, team_characters

logger = logging.getLogger("convai_admin.jobs")

SCHEMA = "convai-admin/bundle@1"
SCHEMA_FAMILY = "convai-admin/bundle@"
MAX_DEPTH = 32
MAX_CHARACTERS = 10_000
# Every JSON value of the document counts (a 20 MB file of empty objects holds 6.6 million):
# reading stops there, whatever is left. 10,000 exported characters hold about 600,000.
MAX_VALUES = 2_000_000
MAX_KEYS = 1_000  # keys in one object (the duplicate check keeps one object's keys at a time)
MAX_PROBLEMS = 12
KIND = Job.Kind.IMPORT_BUNDLE
UPLOAD_ACTION = "character.bundle_upload"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")

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


class BundleInvalid(errors.CharacterError):
    """The file is not a bundle this version can import; `problems` lists why. `reason`,
    `size` and `sha256` describe the refusal for the audit trail (never the content)."""

    def __init__(
        self,
        problems: list[str],
        *,
        reason: str = "invalid",
        size: int | None = None,
        sha256: str | None = None,
    ) -> None:
        self.problems = problems
        self.reason = reason
        self.size = size
        self.sha256 = sha256
        if len(problems) == 1:
            message = f"This file cannot be imported: {problems[0]}"
        else:
            message = f"This file cannot be imported ({len(problems)} problems): " + " ".join(
                problems
            )
        super().__init__(message + " Nothing was changed.")


class UploadGone(errors.CharacterError):
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
        character = selectors.character_for(actor, character_id, live=False)
        operations.authorize(actor=actor, action="character.export", character=character)
        queryset: QuerySet[Character] = Character.objects.filter(pk=character.pk)
    else:
        operations.authorize(actor=actor, action="character.export")
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
        ],
        reason="too_large",
        size=size,
    )


def read_upload(upload: UploadedFile) -> Bundle:
    """Validate an uploaded file, refusing an oversized one before reading it."""
    size = upload.size or 0
    if size > max_bytes():
        raise _too_large(size)
    upload.seek(0)
    return validate_file(upload)


def parse_bundle(data: bytes) -> Bundle:
    """A validated bundle, or BundleInvalid naming every problem (up to MAX_PROBLEMS)."""
    return validate_file(io.BytesIO(data))


def validate_file(stream: IO[bytes]) -> Bundle:
    """Validate a bundle read from a seekable binary stream, in bounded memory: one pass checks
    the size, the encoding and the hash; a second parses it as a stream of events (ijson),
    materialising only the imported fields of one character at a time, with caps on depth,
    keys per object, values in the document and characters in the bundle."""
    scan = _scan(stream)
    try:
        stream.seek(3 if scan.bom else 0)
        backend = _EXACT if scan.exact else _FAST
        reader = _Reader(backend.basic_parse(stream, buf_size=_PARSE_BUFFER))
        return _document(reader, scan)
    except _Fatal as fatal:
        raise BundleInvalid([fatal.problem], reason=fatal.reason, **scan.facts()) from None
    except (ijson.JSONError, ValueError):
        raise BundleInvalid(
            [
                "it is not valid JSON (a missing comma, quote or bracket, a trailing comma, "
                "or a value JSON does not have, such as NaN or Infinity). Export it again, or "
                "check it with a JSON validator."
            ],
            reason="not_json",
            **scan.facts(),
        ) from None


@dataclass(frozen=True)
class _Scan:
    size: int
    sha256: str
    bom: bool
    exact: bool

    def facts(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256}


# yajl2_c is ten times faster per value, but turns a lone high surrogate escape into "?"
# (silently), fails badly on a number of thousands of digits, and slows down more than
# linearly on one long string (it copies the token again for each buffer it spans: a 20 MB
# string takes 44 s with 64 KB buffers; larger buffers cost memory instead, as both parsers
# hand over a whole buffer's events at once). Files with any of these (a long string shows as
# a long run without a quote) go to the pure-Python parser, which reports the first two
# exactly and reads long strings in linear time. docs/benchmarks.md has the figures.
_EXACT = ijson.get_backend("python")
try:
    _FAST = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - the wheel ships it; a source build may not
    _FAST = _EXACT
_CHUNK = 64 * 1024
_PARSE_BUFFER = 64 * 1024
_LONG_RUN = 256 * 1024  # bytes without an unescaped quote
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 1000
_SURROGATE = re.compile("[\ud800-\udfff]")


def _needs_exact(window: bytes) -> bool:
    if b"\\u" in window and _SURROGATE_ESCAPE.search(window):
        return True
    return _LONG_NUMBER in window.translate(_DIGITS)


def _scan(stream: IO[bytes]) -> _Scan:
    """Size, SHA-256, UTF-8 and the parser to use, reading 64 KB at a time."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size, content, exact, utf8, head, tail, quoteless = 0, False, False, True, b"", b"", 0
    stream.seek(0)
    while chunk := stream.read(_CHUNK):
        if not head:
            head = chunk[:4]
        size += len(chunk)
        if size > max_bytes():
            raise _too_large(size)
        digest.update(chunk)
        content = content or bool(chunk.strip())
        exact = exact or _needs_exact(tail + chunk)
        tail = chunk[-1000:]
        # A long run without a quote may be one long string. Over-counting escaped quotes
        # only makes a run look longer: the safe direction.
        if chunk.count(b'"') > chunk.count(b'\\"'):
            quoteless = 0
        else:
            quoteless += len(chunk)
            exact = exact or quoteless > _LONG_RUN
        if utf8:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                utf8 = False  # read on for the size and the hash the refusal records
    facts: dict[str, Any] = {"size": size, "sha256": digest.hexdigest()}
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        utf8 = False
    if not utf8:
        raise BundleInvalid([_not_utf8(head)], reason="not_utf8", **facts)
    if not content:
        raise BundleInvalid(["the file is empty."], reason="empty", **facts)
    if b"\x00" in head:
        raise BundleInvalid([_not_utf8(b"\xff\xfe")], reason="not_utf8", **facts)
    return _Scan(size, digest.hexdigest(), head.startswith(codecs.BOM_UTF8), exact)


def _not_utf8(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "it is compressed (gzip). Unpack it and upload the .json file inside."
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive. Unpack it and upload the .json file inside."
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "it is UTF-16 text; a bundle is UTF-8. Save it again as UTF-8."
    return "it is not UTF-8 text (a bundle is a JSON file in UTF-8)."


class _Fatal(Exception):
    """A problem that ends the reading of the file (the rest cannot be trusted or is moot)."""

    def __init__(self, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.reason = reason


@dataclass(frozen=True)
class _Opaque:
    """A value read and checked but not kept: only its JSON type matters."""

    kind: str


_KINDS = {
    "start_map": "object",
    "start_array": "array",
    "string": "text",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def _shown(text: str, limit: int = 40) -> str:
    """Text from the file, safe to quote in a message (invisible characters escaped)."""
    cut = text[:limit]
    if cut.isprintable():
        return cut
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)


class _Reader:
    """ijson's events with the document-wide limits enforced as they pass."""

    def __init__(self, events: Iterable[tuple[str, Any]]) -> None:
        self._events = iter(events)
        self.depth = 0
        self.values = 0

    def next(self) -> tuple[str, Any]:
        try:
            event, value = next(self._events)
        except StopIteration:
            raise _Fatal("it ends too early (the file is cut short).", "not_json") from None
        if event in ("start_map", "start_array"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Fatal(f"it is nested more than {MAX_DEPTH} levels deep.", "depth")
        elif event in ("end_map", "end_array"):
            self.depth -= 1
        if event in _KINDS:
            self.values += 1
            if self.values > MAX_VALUES:
                self._too_many_values()
        if isinstance(value, str) and _SURROGATE.search(value):
            self._refuse_surrogate(value)
        return event, value

    def _too_many_values(self) -> NoReturn:
        raise _Fatal(
            f"it holds more than {MAX_VALUES:,} values; no bundle of {MAX_CHARACTERS:,} "
            "characters needs that many.",
            "too_many_values",
        )

    def _refuse_surrogate(self, value: str) -> NoReturn:
        """A text with a lone surrogate (the parser let it through): refused."""
        raise _Fatal(
            "it contains a lone UTF-16 surrogate (an escape such as \\ud800 that is not "
            "a character). Fix the text and export it again.",
            "surrogate",
        )

    def end(self) -> None:
        """Nothing may follow the document (ijson raises on trailing data when pulled)."""
        try:
            next(self._events)
        except StopIteration:
            return
        raise _Fatal("it holds more than one JSON document.", "not_json")

    def key(self, keys: set[str], key: str) -> None:
        if key in keys:
            raise _Fatal(f"the key “{_shown(key)}” appears twice in one object.", "duplicate_key")
        if len(keys) >= MAX_KEYS:
            raise _Fatal(f"an object in it has more than {MAX_KEYS:,} keys.", "too_many_keys")
        keys.add(key)

    def skip(self, event: str, value: Any) -> _Opaque:
        """Read past a value, checking it (depth, duplicate keys, limits), keeping nothing.
        The hot loop of a hostile file: the checks of `next` and `key`, inlined."""
        kind = _KINDS[event]
        if event not in _CONTAINERS:
            return _Opaque(kind)
        depth, values, base = self.depth, self.values, self.depth - 1
        open_keys: list[set[str] | None] = [set() if event == "start_map" else None]
        for event, value in self._events:
            if event == "map_key":
                keys = open_keys[-1]
                assert keys is not None
                if _SURROGATE.search(value):
                    self._refuse_surrogate(value)
                self.key(keys, value)
                continue
            if event == "end_map" or event == "end_array":
                depth -= 1
                open_keys.pop()
                if depth == base:
                    break
                continue
            values += 1
            if event == "start_map" or event == "start_array":
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Fatal(f"it is nested more than {MAX_DEPTH} levels deep.", "depth")
                open_keys.append(set() if event == "start_map" else None)
            elif event == "string" and _SURROGATE.search(value):
                self._refuse_surrogate(value)
            if values > MAX_VALUES:
                self.values = values
                self._too_many_values()
        else:
            raise _Fatal("it ends too early (the file is cut short).", "not_json")
        self.depth, self.values = depth, values
        return _Opaque(kind)

    def collect(self, event: str, value: Any, *, limit: int) -> Any:
        """A scalar, or a list / object of scalars with at most `limit` members; anything
        bigger or deeper is read past and kept as its type only."""
        if event == "start_array":
            items: list[Any] = []
            while (item := self.next())[0] != "end_array":
                if len(items) >= limit:
                    self.skip(*item)
                    while (rest := self.next())[0] != "end_array":
                        self.skip(*rest)
                    return _Opaque("array")
                items.append(self.skip(*item) if item[0] in _CONTAINERS else item[1])
            return items
        if event == "start_map":
            members: dict[str, Any] = {}
            keys: set[str] = set()
            while (pair := self.next())[0] != "end_map":
                self.key(keys, pair[1])
                member = self.next()
                if len(members) >= limit or member[0] in _CONTAINERS:
                    self.skip(*member)
                    members[pair[1]] = _Opaque(_KINDS[member[0]])
                else:
                    members[pair[1]] = member[1]
            return members if len(members) <= limit else _Opaque("object")
        return value


_CONTAINERS = ("start_map", "start_array")
# Raw list items kept for checking (blanks and duplicates are dropped by the rules after).
_LIST_LIMIT = 1_000


def _document(reader: _Reader, scan: _Scan) -> Bundle:
    event, value = reader.next()
    if event != "start_map":
        raise _Fatal("it is not a Convai Admin bundle (no “schema”).", "schema")
    top: dict[str, Any] = {}
    keys: set[str] = set()
    problems: list[str] = []
    characters: list[BundleCharacter] = []
    count = 0
    while (pair := reader.next())[0] != "end_map":
        key = pair[1]
        reader.key(keys, key)
        event, value = reader.next()
        if key == "characters" and event == "start_array":
            count = _characters(reader, problems, characters)
            top[key] = []
        elif key in ("schema", "team"):
            top[key] = reader.collect(event, value, limit=0)
        else:
            top[key] = reader.skip(event, value)
    reader.end()
    schema = top.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
            raise _Fatal(
                f"it was made in format “{_shown(schema)}”; this dashboard reads “{SCHEMA}”.",
                "schema",
            )
        raise _Fatal(f"it is not a Convai Admin bundle (its “schema” is not “{SCHEMA}”).", "schema")
    head: list[str] = []
    unknown = sorted(set(top) - {"schema", "characters", "selection", "team"})
    if unknown:
        head.append(f"unknown top-level key “{_shown(unknown[0])}”.")
    team = top.get("team", "")
    try:
        team = validation.single_line(team)
        if len(team) > 100:
            raise ValidationError("too long")
    except ValidationError:
        head.append("“team” must be one line of text of at most 100 characters.")
        team = ""
    if not isinstance(top.get("selection", _Opaque("object")), _Opaque) or (
        top.get("selection", _Opaque("object")).kind != "object"
    ):
        head.append("“selection” must be an object.")
    if "characters" not in top or isinstance(top["characters"], _Opaque):
        raise BundleInvalid(
            [*head, "“characters” must be a list."][:MAX_PROBLEMS],
            reason="fields",
            **scan.facts(),
        )
    if count == 0:
        head.append("it has no characters.")
    problems = head + problems
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append("(and more)")
        raise BundleInvalid(shown, reason="fields", **scan.facts())
    return Bundle(characters, str(team), scan.sha256, scan.size)


def _characters(reader: _Reader, problems: list[str], characters: list[BundleCharacter]) -> int:
    """Read the characters one at a time; returns how many the list holds."""
    seen: dict[str, int] = {}
    count = 0
    while (event := reader.next())[0] != "end_array":
        count += 1
        if count > MAX_CHARACTERS:
            raise _Fatal(
                f"it has more than {MAX_CHARACTERS:,} characters; a bundle may hold "
                f"{MAX_CHARACTERS:,}. Export a filtered list instead, or split it.",
                "too_many_characters",
            )
        if len(problems) > MAX_PROBLEMS:
            reader.skip(*event)  # refused already: read on (checked), keep nothing
            continue
        item = _item(reader) if event[0] == "start_map" else reader.skip(*event)
        character = _character(count, item, problems)
        if character is None:
            continue
        if character.convai_id in seen:
            problems.append(
                f"Character {count}: Convai ID {character.convai_id} is also character "
                f"{seen[character.convai_id]}."
            )
            continue
        seen[character.convai_id] = count
        characters.append(character)
    return count


def _item(reader: _Reader) -> dict[str, Any]:
    """One character's object: the imported fields kept (bounded), the rest checked only."""
    item: dict[str, Any] = {}
    keys: set[str] = set()
    while (pair := reader.next())[0] != "end_map":
        key = pair[1]
        reader.key(keys, key)
        event, value = reader.next()
        if key in _KEPT:
            item[key] = reader.collect(event, value, limit=_LIST_LIMIT)
        else:
            item[key] = reader.skip(event, value)
    return item


_KEPT = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS) - {"snapshot"}


def _check(
    where: str, key: str, value: Any, clean: Callable[[Any], Any], problems: list[str]
) -> Any:
    try:
        return clean(value)
    except ValidationError as error:
        problems.append(f"{where}: “{key}”: {validation.message(error)}")
        return None


def _listed(clean: Callable[[Iterable[object]], list[str]]) -> Callable[[Any], list[str]]:
    def checked(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValidationError("This must be a list of texts.")
        return clean(value)

    return checked


def _character(number: int, item: Any, problems: list[str]) -> BundleCharacter | None:
    where = f"Character {number}"
    if not isinstance(item, dict):
        problems.append(f"{where} is not an object.")
        return None
    name_value = item.get("name")
    if isinstance(name_value, str) and name_value.strip():
        where = f"Character {number} (“{_shown(name_value.strip())}”)"
    before = len(problems)
    missing = [key for key in REQUIRED_KEYS if key not in item]
    if missing:
        problems.append(f"{where} has no “{missing[0]}”.")
        return None
    unknown = sorted(set(item) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        problems.append(f"{where} has an unknown key “{_shown(unknown[0])}”.")
    # The character form's rules, exactly (characters/validation.py).
    convai_id = _check(where, "convai_id", item["convai_id"], validation.clean_convai_id, problems)
    name = _check(where, "name", item["name"], validation.clean_name, problems)
    voice_type = _check(
        where, "voice_type", item["voice_type"], validation.clean_voice_type, problems
    )
    backstory = _check(where, "backstory", item["backstory"], validation.clean_backstory, problems)
    actions = _check(where, "actions", item["actions"], _listed(validation.clean_actions), problems)
    codes = _check(
        where,
        "language_codes",
        item["language_codes"],
        _listed(validation.clean_language_codes),
        problems,
    )
    _optional(where, item, problems)
    if len(problems) > before:
        return None
    return BundleCharacter(
        ordinal=number,
        convai_id=convai_id,
        name=name,
        voice_type=voice_type,
        backstory=backstory,
        actions=actions,
        language_codes=codes,
    )


def _moment_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 40 and value.isprintable()


def _optional(where: str, item: dict[str, Any], problems: list[str]) -> None:
    """The informative keys are not imported, but a wrong type still means a wrong file."""
    snapshot = item.get("snapshot", _Opaque("object"))
    if not (isinstance(snapshot, _Opaque) and snapshot.kind == "object"):
        problems.append(f"{where}: “snapshot” must be an object.")
    version = item.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        problems.append(f"{where}: “version” must be a whole number.")
    for key in ("created_at", "updated_at", "synced_at", "remote_missing_at"):
        value = item.get(key)
        if value is not None and not _moment_text(value):
            problems.append(f"{where}: “{key}” must be a date and time, or null.")
    pending = item.get("pending_language_codes")
    if pending is not None:
        _check(
            where,
            "pending_language_codes",
            pending,
            _listed(validation.clean_language_codes),
            problems,
        )
    copied = item.get("copied_from")
    if copied is not None and not (
        isinstance(copied, dict)
        and isinstance(copied.get("convai_id"), str)
        and validation.CONVAI_ID.fullmatch(copied["convai_id"])
        and (copied.get("revision") is None or type(copied.get("revision")) is int)
        and set(copied) <= {"convai_id", "revision"}
    ):
        problems.append(f"{where}: “copied_from” must be an object with a “convai_id”, or null.")


# --- Uploads waiting for confirmation ------------------------------------------------------------
#
# A validated upload waits in VAR_DIR/bundles/ as t<team>-u<user>-<token>.json (+ .name, the
# original file name) until it is confirmed and its job is done, for a day at most. Each member
# has at most one pending upload per team (a new one replaces it; one a job reads is kept), the
# directory as a whole stays under CONVAI_BUNDLE_STORAGE_MAX_BYTES, and a member may upload
# CONVAI_BUNDLE_UPLOADS_PER_WINDOW files per CONVAI_BUNDLE_UPLOAD_WINDOW_SECONDS (counted in
# the audit log, so every web process sees the same count).


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
                f"({_megabytes(used)} of {_megabytes(storage_max_bytes())} in use). Try again "
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
        f"({_megabytes(freed)}); {kept} kept."
    )


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
    operations.authorize(actor=actor, action="character.import")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label="bundle import"
    )
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
        raise errors.CharacterError(
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
            "key_used": operations.key_label(preview.api_key),
        },
    )
    return job


def _bundle_body(run: jobs.JobRun) -> None:
    job, actor = run.job, run.actor
    operations.authorize(actor=actor, action="character.import")
    if job.api_key_id is None:
        raise jobs.JobError("The API key of this import was deleted.")
    token = str(job.params.get("bundle", ""))
    try:
        bundle, filename = load_upload(actor=actor, token=token)
    except errors.CharacterError as error:
        raise jobs.JobError(error.message) from None
    if bundle.sha256 != job.params.get("sha256"):
        raise jobs.JobError("The uploaded bundle changed since the import was confirmed.")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=job.api_key_id, label=filename
    )
    entries = {entry.convai_id: entry for entry in bundle.characters}
    try:
        owned = _owned(actor, api_key)
    except errors.CharacterError as error:
        raise jobs.JobError(error.message) from None

    # The same pooled engine as import all (characters.bulk.run_pooled): up to
    # CONVAI_JOB_CONCURRENCY characters at once, each through the page services in a pool
    # thread; the results are recorded here, in batches, between the job's stop checks.
    def work() -> Iterator[tuple[JobItem, Callable[[], tuple[str, str, int | None]]]]:
        for item in list(run.pending()):
            entry = entries.get(item.target_id)
            if entry is None:
                run.record_item(item, JobItem.State.FAILED, "Not in the bundle any more.")
                continue
            yield item, partial(_apply_one, run, item, api_key, entry, owned)

    def handle(item: JobItem, fetched: bulk.Fetched) -> None:
        error = fetched.error
        if isinstance(error, errors.CharacterError):  # recorded by the service that refused
            run.record_item(item, JobItem.State.FAILED, error.message)
        elif error is not None:
            logger.error(
                "Bundle import %s: %s failed unexpectedly", job.pk, item.target_id, exc_info=error
            )
            run.record_item(item, JobItem.State.FAILED, "An unexpected error stopped this item.")
        else:
            state, message, local_id = fetched.value
            run.record_item(item, state, message, local_id=local_id)

    bulk.run_pooled(run, work(), handle, uses_database=True)
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
    run: jobs.JobRun,
    item: JobItem,
    api_key: ApiKey,
    entry: BundleCharacter,
    owned: Mapping[str, Any],
) -> tuple[str, str, int | None]:
    """One character through the services: (item state, message, local character)."""
    actor = run.actor
    if entry.convai_id not in owned:
        # One create per item, whatever happens to the worker: the item's own operation token
        # makes a second attempt (a resume after a run died mid-create) find the first one's
        # outcome instead of creating twice; one whose outcome is unknown fails this item and
        # is resolved by reconciliation (reconciliation.reconcile_pending_operations).
        try:
            saved = services.create_character(
                actor=actor,
                api_key_id=api_key.pk,
                token=f"job-{run.job.pk}-item-{item.pk}",
                **entry.fields(),
            )
        except errors.OperationDone as done:
            character = done.character
            return (
                JobItem.State.DONE,
                "Created (by the run before the resume).",
                character.pk if character is not None else None,
            )
        message = "Created."
        if saved.warnings:
            message += " " + " ".join(saved.warnings)
        return JobItem.State.DONE, message, saved.character.pk
    character = Character.objects.filter(
        team=actor.team, convai_id=entry.convai_id, deleted_at__isnull=True
    ).first()
    joined = character is None
    if character is None:
        character = importing.import_character(
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


@task()
def import_bundle(job_id: int) -> str:
    """Create or update each character of an uploaded bundle under the job's key."""
    return jobs.run_job(job_id, _bundle_body, task=import_bundle)
