"""A bundle file validated as a stream, in bounded memory: one pass checks the size, the
encoding and the hash; a second parses it as a stream of events (ijson), materialising only the
imported fields of one character at a time, with caps on depth, keys per object, values in the
document and characters in the bundle. A file is refused as a whole (BundleInvalid) naming every
problem found, up to MAX_PROBLEMS."""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any, NoReturn

import ijson
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from .. import validation
from .schema import (
    KEPT,
    SCHEMA,
    SCHEMA_FAMILY,
    Bundle,
    BundleCharacter,
    BundleInvalid,
    Opaque,
    character_from,
    max_bytes,
    shown,
    too_large,
)

MAX_DEPTH = 32
MAX_CHARACTERS = 10_000
# Every JSON value of the document counts (a 20 MB file of empty objects holds 6.6 million):
# reading stops there, whatever is left. 10,000 exported characters hold about 600,000.
MAX_VALUES = 2_000_000
MAX_KEYS = 1_000  # keys in one object (the duplicate check keeps one object's keys at a time)
MAX_PROBLEMS = 12


def read_upload(upload: UploadedFile) -> Bundle:
    """Validate an uploaded file, refusing an oversized one before reading it."""
    size = upload.size or 0
    if size > max_bytes():
        raise too_large(size)
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
            raise too_large(size)
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


_KINDS = {
    "start_map": "object",
    "start_array": "array",
    "string": "text",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


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
            raise _Fatal(f"the key “{shown(key)}” appears twice in one object.", "duplicate_key")
        if len(keys) >= MAX_KEYS:
            raise _Fatal(f"an object in it has more than {MAX_KEYS:,} keys.", "too_many_keys")
        keys.add(key)

    def skip(self, event: str, value: Any) -> Opaque:
        """Read past a value, checking it (depth, duplicate keys, limits), keeping nothing.
        The hot loop of a hostile file: the checks of `next` and `key`, inlined."""
        kind = _KINDS[event]
        if event not in _CONTAINERS:
            return Opaque(kind)
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
        return Opaque(kind)

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
                    return Opaque("array")
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
                    members[pair[1]] = Opaque(_KINDS[member[0]])
                else:
                    members[pair[1]] = member[1]
            return members if len(members) <= limit else Opaque("object")
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
    _check_schema(top.get("schema"))
    head, team = _top_problems(top)
    if "characters" not in top or isinstance(top["characters"], Opaque):
        raise BundleInvalid(
            [*head, "“characters” must be a list."][:MAX_PROBLEMS],
            reason="fields",
            **scan.facts(),
        )
    if count == 0:
        head.append("it has no characters.")
    problems = head + problems
    if problems:
        reported = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            reported.append("(and more)")
        raise BundleInvalid(reported, reason="fields", **scan.facts())
    return Bundle(characters, str(team), scan.sha256, scan.size)


def _check_schema(schema: Any) -> None:
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
            raise _Fatal(
                f"it was made in format “{shown(schema)}”; this dashboard reads “{SCHEMA}”.",
                "schema",
            )
        raise _Fatal(f"it is not a Convai Admin bundle (its “schema” is not “{SCHEMA}”).", "schema")


def _top_problems(top: dict[str, Any]) -> tuple[list[str], str]:
    """The problems of the document's own keys (besides "characters"), and its team."""
    head: list[str] = []
    unknown = sorted(set(top) - {"schema", "characters", "selection", "team"})
    if unknown:
        head.append(f"unknown top-level key “{shown(unknown[0])}”.")
    team = top.get("team", "")
    try:
        team = validation.single_line(team)
        if len(team) > 100:
            raise ValidationError("too long")
    except ValidationError:
        head.append("“team” must be one line of text of at most 100 characters.")
        team = ""
    if not isinstance(top.get("selection", Opaque("object")), Opaque) or (
        top.get("selection", Opaque("object")).kind != "object"
    ):
        head.append("“selection” must be an object.")
    return head, team


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
        character = character_from(count, item, problems)
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
        if key in KEPT:
            item[key] = reader.collect(event, value, limit=_LIST_LIMIT)
        else:
            item[key] = reader.skip(event, value)
    return item
