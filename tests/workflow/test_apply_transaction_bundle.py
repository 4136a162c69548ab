"""`apply` over a transaction Bundle whose references are its entries' ``urn:uuid`` fullUrls
(as Synthea writes one Bundle per patient): the same plan as the same records in NDJSON.

FHIR R4 Bundle references: https://hl7.org/fhir/R4/bundle.html#references — a reference to a
``fullUrl`` inside the Bundle names that entry; a server stores it as the entry's ``Type/id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.sources import read_resources

from .helpers import ROOT

_register()
runner = CliRunner()
PLAN = str(ROOT / "examples" / "practice-plan.toml")
CLINIC = ROOT / "examples" / "clinic"
TODAY = "2026-11-26"


def _apply(path: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["apply", str(path), "--plan", PLAN, "--today", TODAY,
                                 "--format", "json"])
    assert result.exit_code == 0, result.stdout
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _uuid(ref: str) -> str:
    return "urn:uuid:00000000-0000-4000-8000-" + ref.split("/")[1].encode().hex()[:12].zfill(12)


def _as_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The records as a Synthea-style transaction Bundle: every reference to an entry is its
    ``urn:uuid`` fullUrl; the Patient entry comes last (a reference before its entry)."""
    urls = {f"{r['resourceType']}/{r['id']}": _uuid(f"{r['resourceType']}/{r['id']}")
            for r in resources}
    text = json.dumps(resources)
    for ref, url in urls.items():
        text = text.replace(json.dumps(ref), json.dumps(url))
    entries = [
        {"fullUrl": urls[f"{r['resourceType']}/{r['id']}"], "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}}
        for r in json.loads(text)
    ]
    entries.sort(key=lambda e: e["resource"]["resourceType"] == "Patient")
    patient_url = next(e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Patient")
    entries.append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000000a",
                    "resource": {"resourceType": "Medication", "id": "m1"}})
    entries.append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000000b",
                    "resource": {"resourceType": "Provenance", "id": "v1",
                                 "target": [{"reference": patient_url}]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_transaction_bundle_plans_as_its_ndjson(tmp_path: Path) -> None:
    whole = _apply(CLINIC)
    patient = next(p["patient"] for p in whole["patients"] if len(p["actions"]) >= 2)
    mine = [r for r in read_resources([CLINIC])
            if not isinstance(r, Exception)
            and (f"{r['resourceType']}/{r.get('id')}" == patient
                 or json.dumps(patient) in json.dumps(r))]
    (tmp_path / "ndjson").mkdir()
    (tmp_path / "ndjson" / "all.ndjson").write_text("".join(json.dumps(r) + "\n" for r in mine))
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "patient.json").write_text(json.dumps(_as_transaction(mine)))

    expected = _apply(tmp_path / "ndjson")
    got = _apply(tmp_path / "bundle")

    assert got["errors"] == []  # before: every entry "has no Patient reference"
    assert got["skipped"] == {"Medication": 1, "Provenance": 1}
    assert [p["patient"] for p in got["patients"]] == [patient]
    assert [a["rule"] for a in got["patients"][0]["actions"]] == [
        a["rule"] for a in expected["patients"][0]["actions"]
    ]
    assert len(got["patients"][0]["actions"]) >= 2


def test_bulk_export_parameters_file_is_skipped_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    (tmp_path / "parameters.json").write_text('{"resourceType": "Parameters", "parameter": []}')
    report = _apply(tmp_path)
    assert report["errors"] == []
    assert report["skipped"] == {"Parameters": 1}
