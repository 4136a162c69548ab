"""``bill --input`` streams as ``apply`` does: the input is partitioned by patient into buckets
(spilled to disk past a size), each closed on its own, and only what billing reads is kept.
The report must not depend on how the input was partitioned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.billing import files as bill_files
from bhi_fhir.billing.ledger import Month
from bhi_fhir.billing.report import report_row
from bhi_fhir.billing.rules import rules_from_plan
from bhi_fhir.practice_plan import load_practice_plan

ROOT = Path(__file__).resolve().parents[2]
CLINIC = ROOT / "examples" / "clinic"
RULES = rules_from_plan(load_practice_plan(ROOT / "examples" / "practice-plan.toml"))


def _close(monkeypatch: pytest.MonkeyPatch, bucket_bytes: int) -> bill_files.FilesMonth:
    monkeypatch.setattr(bill_files, "_BUCKET_BYTES", bucket_bytes)
    return bill_files.close_files([CLINIC], Month.parse("2026-10"), RULES)


def _rows(files: bill_files.FilesMonth) -> list[dict[str, Any]]:
    return [report_row(m, "dry-run") for m in files.months]


def test_spilled_buckets_give_the_same_report_as_one_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = _close(monkeypatch, 1 << 40)
    spilled = _close(monkeypatch, 4096)  # dozens of buckets, each a temporary NDJSON file
    assert whole.months, "the example clinic bills October 2026"
    assert _rows(spilled) == _rows(whole)
    assert [r.reference for r in spilled.rejected] == [r.reference for r in whole.rejected]
    assert [b.get("id") for b in spilled.bills] == [b.get("id") for b in whole.bills]
    assert [m.patient for m in spilled.months] == sorted(m.patient for m in spilled.months)


def test_only_billing_types_and_a_slim_patient_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[dict[str, Any]] = []
    add = bill_files.PatientBuckets.add

    def spy(self: Any, patient: str, resource: dict[str, Any], origin: Any) -> None:
        kept.append(resource)
        add(self, patient, resource, origin)

    monkeypatch.setattr(bill_files.PatientBuckets, "add", spy)
    _close(monkeypatch, 4096)
    kinds = {r["resourceType"] for r in kept}
    assert kinds <= {"Patient", "Encounter", "Consent", "CarePlan", "CareTeam", "Condition",
                     "Coverage"}  # fmt: skip
    assert "Encounter" in kinds and "Patient" in kinds
    patients = [r for r in kept if r["resourceType"] == "Patient"]
    assert all(set(p) <= {"resourceType", "id", "identifier", "deceasedBoolean",
                          "deceasedDateTime"} for p in patients)  # fmt: skip
    assert all("birthDate" in p for p in _raw_patients()), "dropped: the input has more"


def _raw_patients() -> list[dict[str, Any]]:
    path = CLINIC / "Patient.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
