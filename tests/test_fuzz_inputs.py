"""Fuzz tier for the file reader (Hypothesis): hostile bytes, nesting and numbers.

Properties: reading never raises; every bad NDJSON line or Bundle entry is exactly one
SourceError at its place; every good resource still comes through, unchanged and in order,
whatever the Bundle's read chunk size. Bounded (max_examples, no deadline) to run in seconds;
BHI_FUZZ_EXAMPLES=1000 for a longer search.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bhi_fhir import bounded_json
from bhi_fhir.sources import SourceError, read_resources

FUZZ = settings(max_examples=int(os.environ.get("BHI_FUZZ_EXAMPLES", "40")), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])

# JSON values the reader must give back exactly: finite floats, integers of int64 range.
_SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8,
)
_RESOURCES = st.builds(
    lambda kind, rid, body: {**body, "resourceType": kind, "id": rid},
    st.sampled_from(["QuestionnaireResponse", "Patient", "Observation"]),
    st.text(max_size=10),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("resourceType", "id")),
                    _JSON, max_size=3),
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _in_resource(value: str) -> str:
    return '{"resourceType": "Observation", "id": "o", "value": ' + value + "}"


# Records over a bound (a resource otherwise, so only the bound can reject it), or not a
# resource at all.
_HOSTILE = st.one_of(
    st.integers(bounded_json.MAX_DEPTH, 3000).map(lambda d: _in_resource(_deep(d))),
    st.integers(bounded_json.MAX_DEPTH + 1, 3000).map(lambda d: "[" * d),
    st.integers(bounded_json.MAX_NUMBER_CHARS + 1, 6000).map(lambda n: _in_resource("7" * n)),
    st.sampled_from(["1e999", "-1e400", "NaN", "-Infinity", "1" * 400 + ".5"]).map(_in_resource),
    st.sampled_from(["[1, 2]", '"text"', "{}", '{"resourceType": 7}', "{broken", "nul"]),
)


@contextmanager
def _files(**contents: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        for name, data in contents.items():
            (Path(tmp) / name.replace("_", ".")).write_bytes(data)
        yield Path(tmp)


def _read(folder: Path) -> list[dict[str, Any] | SourceError]:
    found = list(read_resources([folder]))
    for item in found:
        assert isinstance(item, SourceError) or isinstance(item.get("resourceType"), str)
    return found


def _is_resource(line: bytes) -> bool:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "resourceType" in data


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    with _files(x_json=data, x_ndjson=data) as folder:
        _read(folder)


@FUZZ
@given(st.lists(st.tuples(st.booleans(), _RESOURCES, _HOSTILE | st.binary(min_size=1)),
                max_size=6))
def test_each_bad_line_is_one_error_and_good_lines_come_through(
    rows: list[tuple[bool, dict[str, Any], str | bytes]],
) -> None:
    lines: list[bytes] = []
    for good, resource, bad in rows:
        if good:
            lines.append(json.dumps(resource).encode())
        else:
            raw = bad.encode() if isinstance(bad, str) else bad
            raw = raw.replace(b"\n", b" ")
            assume(raw.strip() and not _is_resource(raw))
            lines.append(raw)
    with _files(x_ndjson=b"\n".join(lines)) as folder:
        found = _read(folder)
    errors = [f for f in found if isinstance(f, SourceError)]
    bad_lines = [n for n, (good, _, _) in enumerate(rows, start=1) if not good]
    assert [e.line for e in errors] == bad_lines
    assert [f for f in found if not isinstance(f, SourceError)] == [
        resource for good, resource, _ in rows if good]


@FUZZ
@given(st.lists(st.tuples(st.booleans(), _RESOURCES, _HOSTILE), max_size=6),
       st.sampled_from([1, 3, 16, 1024]), st.booleans())
def test_each_bad_bundle_entry_is_one_error_and_good_entries_come_through(
    rows: list[tuple[bool, dict[str, Any], str]], chunk: int, pretty: bool
) -> None:
    sep = ",\n " if pretty else ","
    entries = sep.join(
        json.dumps({"fullUrl": "urn:x", "resource": resource}, indent=1 if pretty else None)
        if good else '{"resource": ' + bad + "}"
        for good, resource, bad in rows)
    text = '{"resourceType": "Bundle", "type": "collection", "entry": [' + entries + "]}"
    saved = bounded_json.CHUNK
    bounded_json.CHUNK = chunk
    try:
        with _files(b_json=text.encode()) as folder:
            found = _read(folder)
    finally:
        bounded_json.CHUNK = saved
    good_rows = [resource for good, resource, _ in rows if good]
    if any(not good and bad.startswith(("{broken", "nul", "[[")) for good, _, bad in rows):
        # Not JSON where an entry should be: the file cannot be read on; the entries before
        # it come through, then exactly one error.
        assert isinstance(found[-1], SourceError) and found[-1].message.startswith("not JSON")
        assert all(isinstance(f, dict) or f is found[-1] or f.message.startswith("Bundle.")
                   for f in found)
        return
    errors = [f for f in found if isinstance(f, SourceError)]
    assert [e.message.split(":")[0].split(" ")[0] for e in errors] == [
        f"Bundle.entry[{i}]" for i, (good, _, _) in enumerate(rows) if not good]
    assert [f for f in found if not isinstance(f, SourceError)] == good_rows


@FUZZ
@given(_RESOURCES, st.sampled_from([1, 5, 1 << 20]))
def test_resources_come_back_unchanged(resource: dict[str, Any], chunk: int) -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": resource}] * 2}
    saved = bounded_json.CHUNK
    bounded_json.CHUNK = chunk
    try:
        with _files(a_json=json.dumps(resource).encode(), b_json=json.dumps(bundle).encode(),
                    c_ndjson=json.dumps(resource).encode()) as folder:
            assert _read(folder) == [resource] * 4
    finally:
        bounded_json.CHUNK = saved
