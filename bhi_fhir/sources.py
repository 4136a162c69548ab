"""Read FHIR resources from files: one resource, a Bundle, or NDJSON (the bulk-export shape).

Streams: NDJSON is read a line at a time, so memory stays flat however large the export is.
A line or file that is not FHIR does not stop the read; it comes out as a ``SourceError``
in its place, so the caller can report it and carry on with the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Resource = dict[str, Any]

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


def read_resources(
    paths: Iterable[Path], *, accept: Collection[str] | None = None
) -> Iterator[Resource | SourceError]:
    """Every resource in ``paths`` (Bundle entries unwrapped), or an error in its place.

    ``accept`` limits the resource types allowed at the top of a file or NDJSON line
    (Bundle entries are not limited); anything else becomes a ``SourceError``.
    """
    errors: list[SourceError] = []
    for path in expand_paths(paths, errors.append):
        yield from errors
        errors.clear()
        yield from _read_file(path, accept)
    yield from errors


def _read_file(path: Path, accept: Collection[str] | None) -> Iterator[Resource | SourceError]:
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield SourceError(name, None, f"cannot read file: {exc.strerror or exc}")
        return
    with handle:
        if path.suffix in (".ndjson", ".jsonl"):
            # Bytes, decoded line by line: one bad line must not end the read of the rest.
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield SourceError(name, number, "not UTF-8 text")
                    continue
                if line.strip():
                    yield from _parse(line, name, number, accept)
            return
        try:
            text = handle.read().decode("utf-8")
        except UnicodeDecodeError:
            yield SourceError(name, None, "not UTF-8 text")
            return
    yield from _parse(text, name, None, accept)


def _parse(
    text: str, name: str, line: int | None, accept: Collection[str] | None
) -> Iterator[Resource | SourceError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        yield SourceError(name, line, f"not JSON ({exc.msg} at {where})")
        return
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
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            yield resource
        else:
            yield SourceError(name, line, f"Bundle.entry[{index}] has no resource")
