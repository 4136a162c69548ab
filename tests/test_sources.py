"""The streaming file reader: every shape of input, and errors in place of bad lines."""

from __future__ import annotations

import json
from pathlib import Path

from bhi_fhir.sources import SourceError, read_resources


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
