"""Read FHIR resources from files: one resource, a Bundle, or NDJSON (the bulk-export shape).

Streams: NDJSON is read a line at a time and a Bundle an entry at a time, so memory stays flat
however large the export is. A line, file or entry that is not FHIR does not stop the read; it
comes out as a ``SourceError`` in its place, so the caller can report it and carry on.

Bounded: hostile input (deep nesting, huge or infinite numbers, endless lines) is one
``SourceError`` for that record, never an exception: nesting deeper than ``MAX_DEPTH``, a number
literal longer than ``MAX_NUMBER_CHARS`` or outside the float range, NaN/Infinity, and a line,
file or entry longer than ``MAX_RECORD_BYTES``.
"""

from __future__ import annotations

import codecs
import itertools
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from bhi_fhir import fhirjson
from bhi_fhir.fhirjson import ResourceDict as Resource

_SUFFIXES = (".json", ".ndjson", ".jsonl")

MAX_DEPTH = 128  # arrays and objects nested, the resource itself included (serde_json's limit)
MAX_NUMBER_CHARS = 64  # one number literal; int64 has 19 digits, a double 17 significant
MAX_RECORD_BYTES = 64 << 20  # one NDJSON line, one non-Bundle file, one Bundle entry
_CHUNK = 1 << 20  # bytes read at a time from a Bundle


@dataclass(frozen=True, slots=True)
class SourceError:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


def expand_paths(
    paths: Iterable[Path], on_error: Callable[[SourceError], None] | None = None
) -> Iterator[Path]:
    """Files as given; directories expanded to their FHIR files, sorted for a stable order.

    A directory that cannot be listed goes to ``on_error`` (it is not silently skipped)."""

    def unreadable(exc: OSError) -> None:
        if on_error is not None:
            on_error(SourceError(str(exc.filename), None, f"cannot read directory: {exc.strerror}"))

    for path in paths:
        if path.is_dir():
            found = [
                Path(root, name)
                for root, _, names in os.walk(path, onerror=unreadable)
                for name in names
            ]
            yield from sorted(p for p in found if p.suffix in _SUFFIXES and p.is_file())
        else:
            yield path


class _Entry(NamedTuple):
    """A Bundle entry's resource and its ``fullUrl`` (how the Bundle's references name it)."""

    resource: Resource
    full_url: str | None


_Found = Resource | SourceError | _Entry


def read_resources(
    paths: Iterable[Path], *, accept: Collection[str] | None = None,
    only: Collection[str] | None = None, local_references: bool = False,
) -> Iterator[Resource | SourceError]:
    """Every resource in ``paths`` (Bundle entries unwrapped), or an error in its place.

    ``accept`` limits the resource types allowed at the top of a file or NDJSON line
    (Bundle entries are not limited); anything else becomes a ``SourceError``.
    ``only`` keeps the resources of these types and drops the rest quietly; an NDJSON line
    whose text cannot hold one (no ``"Type"`` in it) is not even decoded.
    ``local_references``: see :func:`read_entries`.
    """
    for found in read_entries(paths, accept=accept, only=only, local_references=local_references):
        yield found if isinstance(found, SourceError) else found[0]


def read_entries(
    paths: Iterable[Path], *, accept: Collection[str] | None = None,
    only: Collection[str] | None = None, local_references: bool = False,
) -> Iterator[tuple[Resource, str | None] | SourceError]:
    """:func:`read_resources`, each resource with its Bundle entry's ``fullUrl`` (None outside
    a Bundle).

    ``local_references``: a Bundle's references to its own entries (a Synthea transaction
    Bundle's ``urn:uuid:`` subjects) come out as those entries' ``Type/id``, as a server stores
    a transaction (https://hl7.org/fhir/R4/bundle.html#references); an entry that names no
    Patient yet waits for the end of its file, when every fullUrl in it is known.
    """
    errors: list[SourceError] = []
    for path in expand_paths(paths, errors.append):
        yield from errors
        errors.clear()
        needles = None if only is None else tuple(json.dumps(k).encode() for k in only)
        urls: dict[str, str] = {}  # this file's Bundle fullUrl → Type/id
        waiting: list[_Entry] = []
        for found in _read_file(path, accept, needles):
            if isinstance(found, SourceError):
                yield found
                continue
            pair = found if isinstance(found, _Entry) else _Entry(found, None)
            if local_references and pair.full_url is not None:
                fhirjson.add_full_url(urls, pair.full_url, pair.resource)
                if fhirjson.patient_of(pair.resource, urls) is None:
                    if only is None or pair.resource["resourceType"] in only:
                        waiting.append(pair)
                    continue
            if only is None or pair.resource["resourceType"] in only:
                yield fhirjson.localize(pair.resource, urls), pair.full_url
        for pair in waiting:
            yield fhirjson.localize(pair.resource, urls), pair.full_url
    yield from errors


class _Rejected(Exception):
    """A well-formed record over one of the bounds; the message says which."""


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Rejected(f"number longer than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Rejected(f"number longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected("number out of range")
    return value


def _constant(text: str) -> float:
    raise _Rejected(f"{text} is not a JSON number")


def _ignore(text: str) -> None:
    return None


# Strict: the bounds above. Lenient: numbers not converted, only to find where a rejected
# record ends so the read can go on after it.
_STRICT = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)
_LENIENT = json.JSONDecoder(parse_int=_ignore, parse_float=_ignore, parse_constant=_ignore)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_PARENS = str.maketrans("[{]}", "(())")
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_START = frozenset("-0123456789")
_NUMBER_ON = frozenset(["", *".eE+-0123456789"])  # what may follow a cut number
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+')


def _too_deep(text: str) -> bool:
    """Arrays/objects in ``text`` nested deeper than MAX_DEPTH (strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    shape = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_AS_PARENS)
    # Each pass removes the innermost level everywhere.
    for _ in range(MAX_DEPTH):
        inner = shape.replace("()", "")
        if inner == shape:
            return False  # empty, or unbalanced: the decoder reports it
        shape = inner
    return shape.replace("()", "") != shape


def _decode(text: str) -> Any:
    """One JSON document within the bounds; raises _Rejected or json.JSONDecodeError."""
    if _too_deep(text):
        raise _Rejected(f"nested deeper than {MAX_DEPTH}")
    try:
        return _STRICT.decode(text)
    except RecursionError:  # unbalanced and deep: "[[[[…" without its end
        raise _Rejected(f"nested deeper than {MAX_DEPTH}") from None


def _read_file(
    path: Path, accept: Collection[str] | None, needles: tuple[bytes, ...] | None
) -> Iterator[_Found]:
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield SourceError(name, None, f"cannot read file: {exc.strerror or exc}")
        return
    with handle:
        if path.suffix in (".ndjson", ".jsonl"):
            yield from _read_lines(handle, name, accept, needles)
        else:
            yield from _read_document(handle, name, accept)


def _read_lines(
    handle: BinaryIO, name: str, accept: Collection[str] | None, needles: tuple[bytes, ...] | None
) -> Iterator[_Found]:
    # Bytes, decoded line by line: one bad line must not end the read of the rest.
    number = 0
    while raw := handle.readline(MAX_RECORD_BYTES + 1):
        number += 1
        if len(raw.removesuffix(b"\n")) > MAX_RECORD_BYTES:
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = handle.readline(_CHUNK)
            yield SourceError(name, number, f"line longer than {MAX_RECORD_BYTES} bytes")
            continue
        if needles is not None and not any(needle in raw for needle in needles):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield SourceError(name, number, "not UTF-8 text")
            continue
        if line.strip():
            yield from _parse(line, name, number, accept)


def _parse(
    text: str, name: str, line: int | None, accept: Collection[str] | None
) -> Iterator[_Found]:
    try:
        data = _decode(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        yield SourceError(name, line, f"not JSON ({exc.msg} at {where})")
        return
    except _Rejected as exc:
        yield SourceError(name, line, str(exc))
        return
    yield from _classify(data, name, line, accept)


def _classify(
    data: Any, name: str, line: int | None, accept: Collection[str] | None
) -> Iterator[_Found]:
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        yield SourceError(name, line, "not a FHIR resource (no resourceType)")
        return
    kind = data["resourceType"]
    if accept is not None and kind not in accept:
        wanted = " or ".join(sorted(accept))
        yield SourceError(name, line, f"is a {kind}, expected {wanted}")
        return
    if kind != "Bundle":
        yield data
        return
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        yield SourceError(name, line, "Bundle.entry is not a list")
        return
    for index, entry in enumerate(entries):
        if not _deletion(entry):
            yield _entry_resource(entry, index, name, line)


def _deletion(entry: Any) -> bool:
    """A transaction entry that deletes (``request.method`` DELETE) rightly has no resource:
    nothing to read, not an error. A Bulk Data export's ``deleted`` files are such Bundles
    (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status)."""
    request = entry.get("request") if isinstance(entry, dict) else None
    return (isinstance(request, dict) and request.get("method") == "DELETE"
            and entry.get("resource") is None)


def _entry_resource(entry: Any, index: int, name: str, line: int | None) -> _Entry | SourceError:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
        full_url = entry.get("fullUrl")
        return _Entry(resource, full_url if isinstance(full_url, str) and full_url else None)
    return SourceError(name, line, f"Bundle.entry[{index}] has no resource")


# ------------------------------------------------------------------ one JSON file, streamed


class _Broken(Exception):
    """The document cannot be read on from here: the message says why."""


class _Text:
    """A JSON document read a chunk at a time, for values to be decoded one by one.

    ``pos`` is the read position in ``buf``; text before it is dropped as the read goes on.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self._eof = False
        self._mark, self._mark_line = 0, 1  # a position in buf and its line in the file
        self._column0 = 0  # characters on buf[0]'s line before it (in dropped text)

    def more(self, want: int) -> bool:
        """Read until ``want`` characters are held past ``pos``; False at the end."""
        if self._eof:
            return False
        if self.pos > len(self.buf) // 2:
            line = self.line(self.pos)
            newline = self.buf.rfind("\n", 0, self.pos)
            self._column0 = self.pos - newline - 1 if newline >= 0 else self._column0 + self.pos
            self.buf, self.pos = self.buf[self.pos:], 0
            self._mark, self._mark_line = 0, line
        while len(self.buf) - self.pos < want:
            raw = self._handle.read(_CHUNK)
            try:
                self.buf += self._utf8.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise _Broken("not UTF-8 text") from None
            if not raw:
                self._eof = True
                break
        return True

    def line(self, pos: int | None = None) -> int:
        """The line (from 1) in the file of ``pos`` (default: the read position)."""
        at = self.pos if pos is None else pos
        if at >= self._mark:
            self._mark_line += self.buf.count("\n", self._mark, at)
        else:
            self._mark_line -= self.buf.count("\n", at, self._mark)
        self._mark = at
        return self._mark_line

    def where(self, pos: int) -> str:
        newline = self.buf.rfind("\n", 0, pos)
        column = pos - newline if newline >= 0 else self._column0 + pos + 1
        return f"line {self.line(pos)} column {column}"

    def peek(self) -> str:
        """The next non-blank character ('' at the end), not consumed."""
        while True:
            blank = _WS.match(self.buf, self.pos)
            self.pos = blank.end() if blank else self.pos
            if self.pos < len(self.buf) or not self.more(1):
                return self.buf[self.pos:self.pos + 1]

    def take(self, allowed: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            expected = " or ".join(repr(c) for c in allowed)
            raise _Broken(f"not JSON (Expecting {expected} at {self.where(self.pos)})")
        self.pos += 1
        return char

    def value(self) -> Any:
        """The next value within the bounds; one over them is skipped and raises _Rejected."""
        self.peek()
        try:
            value, end = self._decode_at(_STRICT)
        except (_Rejected, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, _Rejected) else f"nested deeper than {MAX_DEPTH}"
            self.pos = self._end_of_value()
            raise _Rejected(reason) from None
        start, self.pos = self.pos, end
        if _too_deep(self.buf[start:end]):
            raise _Rejected(f"nested deeper than {MAX_DEPTH}")
        return value

    def _decode_at(self, decoder: json.JSONDecoder) -> tuple[Any, int]:
        """The value at ``pos`` and where it ends; ``pos`` stays at its start."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._read_on():
                    continue
                raise _Broken(f"not JSON ({exc.msg} at {self.where(exc.pos)})") from None
            # A number cut at the end of what is read ("-0" of "-0.5") may go on.
            if (self.buf[self.pos] in _NUMBER_START and self.buf[end:end + 1] in _NUMBER_ON
                    and self._read_on()):
                continue
            return value, end

    def _read_on(self) -> bool:
        """Read more for the value at ``pos``: False at the end of the file."""
        held = len(self.buf) - self.pos
        if held > MAX_RECORD_BYTES:
            raise _Broken(f"a value at {self.where(self.pos)} is longer than "
                          f"{MAX_RECORD_BYTES} bytes; the rest of the file was not read")
        return self.more(held * 2 + 1)

    def _end_of_value(self) -> int:
        """Where the value at ``pos`` ends, for one the strict decoder rejected."""
        try:
            return self._decode_at(_LENIENT)[1]
        except RecursionError:
            pass
        while True:  # deeper than the decoder goes: match brackets, strings skipped
            depth = 0
            for token in _TOKEN.finditer(self.buf, self.pos):
                run = len(token[0])
                if token[0][0] in "[{":
                    depth += run
                elif token[0][0] in "]}":
                    depth -= run
                    if depth <= 0:
                        return token.end() + depth  # a run of closers may go on past it
            if not self._read_on():
                raise _Broken(f"not JSON (unterminated value at {self.where(self.pos)})")


def _read_document(
    handle: BinaryIO, name: str, accept: Collection[str] | None
) -> Iterator[_Found]:
    """One JSON file: a resource, or a Bundle whose entries come out as they are read."""
    text = _Text(handle)
    line: int | None = None
    try:
        if text.peek() != "{":
            yield from _parse_whole(text, name, accept)
            return
        fields: dict[str, Any] = {}
        text.take("{")
        closed = text.peek() == "}" and text.take("}") == "}"
        while not closed:
            key = text.value()
            if not isinstance(key, str):
                raise _Broken(f"not JSON (Expecting property name at {text.where(text.pos)})")
            text.take(":")
            kind = fields.get("resourceType")
            if key == "entry" and kind == "Bundle" and text.peek() == "[":
                if accept is not None and kind not in accept:
                    yield from _classify(fields, name, None, accept)  # the one error
                    return
                yield from _stream_entries(text, name)
                fields["entry"] = []
            else:
                text.peek()
                line = text.line()
                fields[key] = text.value()
            closed = text.take(",}") == "}"
        if text.peek():
            raise _Broken(f"not JSON (Extra data at {text.where(text.pos)})")
    except _Broken as exc:
        yield SourceError(name, None, str(exc))
        return
    except _Rejected as exc:
        yield SourceError(name, line, str(exc))
        return
    yield from _classify(fields, name, None, accept)


def _stream_entries(text: _Text, name: str) -> Iterator[_Found]:
    text.take("[")
    if text.peek() == "]":
        text.take("]")
        return
    for index in itertools.count():
        text.peek()
        line = text.line()
        try:
            entry = text.value()
            if not _deletion(entry):
                yield _entry_resource(entry, index, name, line)
        except _Rejected as exc:
            yield SourceError(name, line, f"Bundle.entry[{index}]: {exc}")
        if text.take(",]") == "]":
            return


def _parse_whole(
    text: _Text, name: str, accept: Collection[str] | None
) -> Iterator[_Found]:
    """A file that is not a JSON object: read whole (within the bound) for its one error."""
    while text.more(MAX_RECORD_BYTES + 1):
        if len(text.buf) > MAX_RECORD_BYTES:
            yield SourceError(name, None, f"longer than {MAX_RECORD_BYTES} bytes")
            return
    yield from _parse(text.buf, name, None, accept)


# Where a resource was read: (file, line) — line None for a whole-file JSON resource.
Origin = tuple[str, int | None]


class PatientBuckets:
    """Resources partitioned by patient into ``count`` buckets, in memory or spilled to NDJSON
    files in ``spill_dir``, so a command holds one bucket's patients at a time (``apply``,
    ``bill``)."""

    def __init__(self, count: int, spill_dir: Path | None) -> None:
        self.count = count
        self.memory: list[list[tuple[dict[str, Any], Origin]]] = [[] for _ in range(count)]
        self.files = (
            [(spill_dir / f"bucket-{i}.ndjson").open("w", encoding="utf-8") for i in range(count)]
            if spill_dir
            else None
        )

    def add(self, patient: str, resource: dict[str, Any], origin: Origin) -> None:
        index = zlib.crc32(patient.encode()) % self.count
        if self.files is None:
            self.memory[index].append((resource, origin))
        else:
            record = {"r": resource, "f": origin[0], "l": origin[1]}
            self.files[index].write(json.dumps(record, separators=(",", ":")) + "\n")

    def __iter__(self) -> Iterator[list[tuple[dict[str, Any], Origin]]]:
        if self.files is None:
            for index in range(self.count):
                yield self.memory[index]
                self.memory[index] = []
            return
        for handle in self.files:
            handle.close()
        for handle in self.files:
            with Path(handle.name).open(encoding="utf-8") as reader:
                yield [
                    (rec["r"], (rec["f"], rec["l"])) for rec in (json.loads(x) for x in reader)
                ]
