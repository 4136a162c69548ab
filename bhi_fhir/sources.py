"""Read FHIR resources from files: one resource, a Bundle, or NDJSON (the bulk-export shape).

Streams: NDJSON is read a line at a time and a Bundle an entry at a time, so memory stays flat
however large the export is. A line, file or entry that is not FHIR does not stop the read; it
comes out as a ``SourceError`` in its place, so the caller can report it and carry on.

Bounded: hostile input (deep nesting, huge or infinite numbers, endless lines) is one
``SourceError`` for that record, never an exception: nesting deeper than ``MAX_DEPTH``, a number
literal longer than ``MAX_NUMBER_CHARS`` or outside the float range, NaN/Infinity, and a line,
file or entry longer than ``MAX_RECORD_BYTES`` (the bounds and the chunked reading are
:mod:`bhi_fhir.bounded_json`).
"""

from __future__ import annotations

import itertools
import json
import os
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from bhi_fhir import bounded_json, fhirjson
from bhi_fhir.fhirjson import ResourceDict as Resource

_SUFFIXES = (".json", ".ndjson", ".jsonl")


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
    while raw := handle.readline(bounded_json.MAX_RECORD_BYTES + 1):
        number += 1
        if len(raw.removesuffix(b"\n")) > bounded_json.MAX_RECORD_BYTES:
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = handle.readline(bounded_json.CHUNK)
            limit = bounded_json.MAX_RECORD_BYTES
            yield SourceError(name, number, f"line longer than {limit} bytes")
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
        data = bounded_json.decode(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        yield SourceError(name, line, f"not JSON ({exc.msg} at {where})")
        return
    except bounded_json.OverBounds as exc:
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


def _read_document(
    handle: BinaryIO, name: str, accept: Collection[str] | None
) -> Iterator[_Found]:
    """One JSON file: a resource, or a Bundle whose entries come out as they are read."""
    text = bounded_json.JsonText(handle)
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
                where = text.where(text.pos)
                raise bounded_json.Unreadable(f"not JSON (Expecting property name at {where})")
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
            raise bounded_json.Unreadable(f"not JSON (Extra data at {text.where(text.pos)})")
    except bounded_json.Unreadable as exc:
        yield SourceError(name, None, str(exc))
        return
    except bounded_json.OverBounds as exc:
        yield SourceError(name, line, str(exc))
        return
    yield from _classify(fields, name, None, accept)


def _stream_entries(text: bounded_json.JsonText, name: str) -> Iterator[_Found]:
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
        except bounded_json.OverBounds as exc:
            yield SourceError(name, line, f"Bundle.entry[{index}]: {exc}")
        if text.take(",]") == "]":
            return


def _parse_whole(
    text: bounded_json.JsonText, name: str, accept: Collection[str] | None
) -> Iterator[_Found]:
    """A file that is not a JSON object: read whole (within the bound) for its one error."""
    while text.more(bounded_json.MAX_RECORD_BYTES + 1):
        if len(text.buf) > bounded_json.MAX_RECORD_BYTES:
            yield SourceError(name, None, f"longer than {bounded_json.MAX_RECORD_BYTES} bytes")
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
