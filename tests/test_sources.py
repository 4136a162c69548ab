"""The streaming file reader: every shape of input, and errors in place of bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bhi_fhir import bounded_json
from bhi_fhir.sources import Resource, SourceError, read_resources


def _qr(rid: str) -> dict[str, object]:
    return {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed"}


def test_single_resource_bundle_and_ndjson(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_qr("a")))
    patient = {"resourceType": "Patient", "id": "p"}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": _qr("b")}, {"resource": patient}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    (tmp_path / "c.ndjson").write_text(json.dumps(_qr("c")) + "\n\n" + json.dumps(_qr("d")) + "\n")
    (tmp_path / "notes.txt").write_text("ignored: not a FHIR file suffix")
    found = list(read_resources([tmp_path]))
    assert [r["id"] for r in found if isinstance(r, dict)] == ["a", "b", "p", "c", "d"]


def test_errors_stand_in_place_and_the_rest_is_read(tmp_path: Path) -> None:
    lines = [json.dumps(_qr("1")), "{broken", json.dumps([1, 2]), json.dumps(_qr("2"))]
    (tmp_path / "x.ndjson").write_text("\n".join(lines) + "\n")
    found = list(read_resources([tmp_path / "x.ndjson", tmp_path / "missing.json"]))
    assert [f["id"] if isinstance(f, dict) else (f.line, f.message.split(" ")[0]) for f in found] \
        == ["1", (2, "not"), (3, "not"), "2", (None, "cannot")]
    assert str(found[1]).startswith(str(tmp_path / "x.ndjson") + ":2: not JSON")


def test_bundle_entry_without_resource_is_an_error(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:x"}, {"resource": _qr("ok")}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    found = list(read_resources([tmp_path / "b.json"]))
    assert isinstance(found[0], SourceError) and "entry[0]" in found[0].message
    assert isinstance(found[1], dict) and found[1]["id"] == "ok"


def test_accept_limits_top_level_types_not_bundle_entries(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"resourceType": "Patient", "id": "p"}))
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    found = list(read_resources([tmp_path / "p.json", tmp_path / "b.json"],
                                accept=("QuestionnaireResponse", "Bundle")))
    assert isinstance(found[0], SourceError) and "is a Patient" in found[0].message
    assert isinstance(found[1], dict) and found[1]["resourceType"] == "Patient"


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    (found,) = list(read_resources([tmp_path / "bad.json"]))
    assert isinstance(found, SourceError) and found.message == "not UTF-8 text"


def test_a_bad_ndjson_line_does_not_end_the_file(tmp_path: Path) -> None:
    body = json.dumps(_qr("1")).encode() + b"\n\xff\xfe\n" + json.dumps(_qr("2")).encode() + b"\n"
    (tmp_path / "x.ndjson").write_bytes(body)
    found = list(read_resources([tmp_path / "x.ndjson"]))
    assert isinstance(found[1], SourceError) and (found[1].line, found[1].message) == (
        2, "not UTF-8 text")
    assert [f["id"] for f in found if isinstance(f, dict)] == ["1", "2"]


# ----------------------------------------------------------------- bounds on hostile input


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _shape(found: list[Resource | SourceError]) -> list[object]:
    return [f["id"] if isinstance(f, dict) else (f.line, f.message) for f in found]


@pytest.mark.parametrize(("bad", "reason"), [
    pytest.param(_nested(bounded_json.MAX_DEPTH + 1), "nested deeper than", id="depth-over"),
    pytest.param(_nested(100_000), "nested deeper than", id="depth-100k"),
    pytest.param("[" * 100_000, "nested deeper than", id="depth-unclosed"),
    pytest.param('{"resourceType": "QuestionnaireResponse", "n": ' + "9" * 5000 + "}",
                 "number longer than", id="int-5000-digits"),
    pytest.param('{"n": ' + "9" * (bounded_json.MAX_NUMBER_CHARS + 1) + "}", "number longer than",
                 id="int-over"),
    pytest.param('{"n": 1e999}', "number out of range", id="float-inf"),
    pytest.param('{"n": -1e999}', "number out of range", id="float-minus-inf"),
    pytest.param('{"n": NaN}', "not a JSON number", id="nan"),
    pytest.param('{"n": Infinity}', "not a JSON number", id="infinity"),
])
def test_a_hostile_ndjson_line_is_one_error_and_the_rest_is_read(
    tmp_path: Path, bad: str, reason: str
) -> None:
    lines = [json.dumps(_qr("1")), bad, json.dumps(_qr("2"))]
    (tmp_path / "x.ndjson").write_text("\n".join(lines) + "\n")
    found = list(read_resources([tmp_path / "x.ndjson"]))
    assert [f for f in _shape(found) if isinstance(f, str)] == ["1", "2"]
    (error,) = [f for f in found if isinstance(f, SourceError)]
    assert error.line == 2 and reason in error.message, error
    assert str(error).startswith(f"{tmp_path / 'x.ndjson'}:2: ")


@pytest.mark.parametrize(("value", "ok"), [
    pytest.param(_nested(bounded_json.MAX_DEPTH - 1), True, id="depth-at-limit"),
    pytest.param(_nested(bounded_json.MAX_DEPTH), False, id="depth-one-over"),
    pytest.param("9" * bounded_json.MAX_NUMBER_CHARS, True, id="int-at-limit"),
    pytest.param("9" * (bounded_json.MAX_NUMBER_CHARS + 1), False, id="int-one-over"),
    pytest.param("1e308", True, id="float-finite"),
    pytest.param("1e309", False, id="float-overflows"),
])
def test_bounds_on_both_sides(tmp_path: Path, value: str, ok: bool) -> None:
    # The resource object itself is one level: a value nested MAX_DEPTH - 1 deep is the limit.
    line = '{"resourceType": "QuestionnaireResponse", "id": "q", "v": ' + value + "}"
    (tmp_path / "x.ndjson").write_text(line + "\n")
    (found,) = list(read_resources([tmp_path / "x.ndjson"]))
    assert isinstance(found, dict) is ok, found


def test_a_line_over_the_size_bound_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounded_json, "MAX_RECORD_BYTES", 200)
    long = json.dumps({**_qr("big"), "text": "x" * 300})
    lines = [json.dumps(_qr("1")), long, json.dumps(_qr("2"))]
    (tmp_path / "x.ndjson").write_text("\n".join(lines))  # no final newline
    found = list(read_resources([tmp_path / "x.ndjson"]))
    assert _shape(found) == ["1", (2, "line longer than 200 bytes"), "2"]


def test_a_hostile_single_file_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(_nested(200_000))
    (tmp_path / "big.json").write_text('{"resourceType": "Patient", "n": ' + "1" * 5000 + "}")
    (tmp_path / "inf.json").write_text('{"resourceType": "Patient", "n": 1e999}')
    (tmp_path / "ok.json").write_text(json.dumps(_qr("ok")))
    found = list(read_resources([tmp_path]))
    assert [f["id"] for f in found if isinstance(f, dict)] == ["ok"]
    errors = [str(f) for f in found if isinstance(f, SourceError)]
    assert len(errors) == 3
    assert any("big.json:1: " in e and "number longer than" in e for e in errors), errors
    assert any("deep.json: " in e and "nested deeper than" in e for e in errors), errors
    assert any("inf.json:1: " in e and "number out of range" in e for e in errors), errors


def _bundle(*entries: str) -> str:
    return '{"resourceType": "Bundle",\n "type": "collection",\n "entry": [\n' + ",\n".join(
        entries) + "\n]}\n"


def test_a_bad_bundle_entry_is_one_error_and_the_other_entries_come_through(
    tmp_path: Path,
) -> None:
    def entry(resource: str) -> str:
        return '{"resource": ' + resource + "}"

    text = _bundle(entry(json.dumps(_qr("a"))), entry('{"n": ' + "7" * 5000 + "}"),
                   entry(_nested(1000)), entry(json.dumps(_qr("b"))), '{"fullUrl": "x"}',
                   entry('{"n": 1e999}'), entry(json.dumps(_qr("c"))))
    (tmp_path / "b.json").write_text(text)
    found = list(read_resources([tmp_path / "b.json"]))
    assert _shape(found) == [
        "a", (5, "Bundle.entry[1]: number longer than 64 characters"),
        (6, f"Bundle.entry[2]: nested deeper than {bounded_json.MAX_DEPTH}"), "b",
        (8, "Bundle.entry[4] has no resource"), (9, "Bundle.entry[5]: number out of range"),
        "c"]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_a_bundle_streams_the_same_in_any_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(bounded_json, "CHUNK", chunk)
    entries = [{"fullUrl": f"urn:{i}", "resource": {**_qr(str(i)), "n": i / 3, "é": "ü\\\""}}
               for i in range(20)]
    # Top-level numbers are decoded alone: one cut at the chunk's end ("-0" of "-0.5e-3")
    # must be read on, not taken as -0 followed by junk.
    bundle = {"id": "b", "resourceType": "Bundle", "meta": {"tag": [1, 2.5, None, True]},
              "x": -0.5e-3, "y": 12345.25, "entry": entries, "total": 20}
    (tmp_path / "b.json").write_text(json.dumps(bundle, indent=1, ensure_ascii=False))
    found = list(read_resources([tmp_path / "b.json"]))
    assert found == [e["resource"] for e in entries]


@pytest.mark.parametrize("text", [
    '{"": -0.0, "resourceType": "Patient"}',
    '{"resourceType": "Patient", "n": -0.5e-3}',
    '{"resourceType": "Patient", "n": 12.5}',
])
def test_a_document_read_a_character_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(bounded_json, "CHUNK", 1)
    (tmp_path / "a.json").write_text(text)
    assert list(read_resources([tmp_path / "a.json"])) == [json.loads(text)]


def test_entry_before_resource_type_is_still_a_bundle(tmp_path: Path) -> None:
    late = json.dumps(_qr("late"))
    text = '{"entry": [{"resource": ' + late + '}], "resourceType": "Bundle"}'
    (tmp_path / "b.json").write_text(text)
    assert _shape(list(read_resources([tmp_path / "b.json"]))) == ["late"]


@pytest.mark.parametrize("chunk", [1, 1 << 20])
def test_a_broken_bundle_keeps_the_entries_before_the_break(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(bounded_json, "CHUNK", chunk)
    text = _bundle('{"resource": ' + json.dumps(_qr("a")) + "}", '{"resource": {"id": }')
    (tmp_path / "b.json").write_text(text)
    found = list(read_resources([tmp_path / "b.json"]))
    assert found[0] == _qr("a")
    (error,) = found[1:]
    assert isinstance(error, SourceError)
    assert error.message == "not JSON (Expecting value at line 5 column 21)", error


def test_a_non_resource_document_is_one_error(tmp_path: Path) -> None:
    for name, text in {"list.json": "[1, 2]", "str.json": '"x"', "empty.json": "",
                       "trail.json": json.dumps(_qr("t")) + " {}", "obj.json": "{}"}.items():
        (tmp_path / name).write_text(text)
        found = list(read_resources([tmp_path / name]))
        assert len(found) == 1 and isinstance(found[0], SourceError), (name, found)


@pytest.mark.parametrize("name", ["deleted.ndjson", "deleted.json"], ids=["ndjson", "json"])
def test_delete_entries_are_nothing_to_read(tmp_path: Path, name: str) -> None:
    # A Bulk Data export's deleted files hold transaction Bundles of DELETE entries
    # (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status).
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Patient/gone"}},
        {"resource": _qr("kept"),
         "request": {"method": "PUT", "url": "QuestionnaireResponse/kept"}},
        {"request": {"method": "PUT", "url": "Patient/x"}},
    ]}
    (tmp_path / name).write_text(json.dumps(bundle) + "\n")
    found = list(read_resources([tmp_path]))
    assert [r["id"] for r in found if not isinstance(r, SourceError)] == ["kept"]
    assert [str(e).rsplit(": ", 1)[-1] for e in found if isinstance(e, SourceError)] == [
        "Bundle.entry[2] has no resource"]  # a PUT without its resource is still an error
