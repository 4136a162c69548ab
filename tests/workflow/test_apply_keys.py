"""`apply`: conditional-create keys never cost a crisis write.

* A QuestionnaireResponse without an id is named by its content, so it does not fail the whole
  patient (an empty identifier key did) and its own crisis assessment is planned.
* Two patients whose responses share an id (two exports merged) get their own conditional
  creates (identifier *and* patient) and their own fullUrls in the one Bundle.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from bhi_fhir.workflow.pipeline import run_apply
from bhi_fhir.workflow.plan import to_transaction_bundle

from .helpers import ROOT, plan, protocol

TODAY = date(2026, 11, 5)  # three days after the example's authored date: crisis rules fire
CRISIS = "crisis-assessment"


def _qr(patient: str, qr_id: str | None, authored: str = "2026-11-02") -> dict[str, Any]:
    """The PHQ-9 example with item 9 > 0 (a same-day crisis assessment, Kroenke 2001)."""
    qr = json.loads((ROOT / "examples" / "screening" / "phq9-moderate-item9.json").read_text())
    qr.pop("id", None)
    if qr_id is not None:
        qr["id"] = qr_id
    qr["subject"] = {"reference": patient}
    qr["authored"] = authored
    return qr


def _apply(tmp_path: Path, resources: list[dict[str, Any]]) -> Any:
    source = tmp_path / "export.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in resources))
    return run_apply([source], plan(), TODAY, protocol())


def _crisis(report: Any, patient: str) -> list[Any]:
    return [w for p in report.plans if p.patient == patient for w in p.writes
            if w.rule == CRISIS]


def test_a_response_without_id_keeps_the_patients_crisis_assessment(tmp_path: Path) -> None:
    report = _apply(tmp_path, [_qr("Patient/a", None)])
    assert report.errors == []
    writes = _crisis(report, "Patient/a")
    assert writes, "the id-less crisis response is assessed"
    assert all(":QuestionnaireResponse/sha256-" in w.identifier for w in writes)
    again = _apply(tmp_path, [_qr("Patient/a", None)])  # the same file: the same keys
    assert [w.identifier for w in _crisis(again, "Patient/a")] == [w.identifier for w in writes]


def test_a_response_without_id_beside_one_with_id_loses_nothing(tmp_path: Path) -> None:
    report = _apply(tmp_path, [_qr("Patient/a", "qr-1", "2026-11-02"),
                               _qr("Patient/a", None, "2026-11-03")])
    assert report.errors == []
    assert _crisis(report, "Patient/a")


def test_two_patients_with_the_same_response_id_get_their_own_crisis_creates(
    tmp_path: Path,
) -> None:
    report = _apply(tmp_path, [_qr("Patient/a", "qr-1"), _qr("Patient/b", "qr-1")])
    assert report.errors == []
    bundle = to_transaction_bundle(report.plans)
    crisis = [e for e in bundle["entry"]
              if CRISIS in json.dumps(e["resource"].get("identifier"))]
    conditions = {e["request"]["ifNoneExist"] for e in crisis}
    assert {c.rsplit("&patient=", 1)[1] for c in conditions} == {"Patient/a", "Patient/b"}
    assert len(conditions) == len(crisis)  # no two creates share a conditional-create key
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)  # a valid transaction
    for entry in bundle["entry"]:  # references stay within the patient's own writes
        patient = entry["resource"].get("subject", entry["resource"].get("for"))["reference"]
        others = {e["fullUrl"] for e in bundle["entry"]
                  if e["resource"].get("subject", e["resource"].get("for"))["reference"]
                  != patient}
        assert not any(url in json.dumps(entry["resource"]) for url in others)


def test_the_streamed_out_bundle_has_no_fullurl_twice(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bhi_fhir.cli import _register, app

    _register()
    source = tmp_path / "export.ndjson"
    source.write_text("".join(json.dumps(_qr(p, "qr-1")) + "\n"
                              for p in ("Patient/a", "Patient/b")))
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(app, ["apply", str(source), "--plan",
                                      str(ROOT / "examples" / "practice-plan.toml"),
                                      "--today", TODAY.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    entries = json.loads(out.read_text())["entry"]
    full_urls = [e["fullUrl"] for e in entries]
    assert entries and len(set(full_urls)) == len(full_urls)
    assert len({e["request"].get("ifNoneExist") for e in entries}) == len(entries)
