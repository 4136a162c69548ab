"""``bhi-fhir measure --server`` against a real HAPI: a small population seeded, CMS2 and CMS159
decided per patient, the MeasureReports written twice without duplicates, and ``$validate``.

The measurement period is 2031 so no other test's data falls into it (the summary counts only
this population); the reports written are deleted before the run's cleanup deletes the
patients they reference.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, ICD10CM, LOINC
from bhi_fhir.fhir import FhirClient
from bhi_fhir.measures.valuesets import codes
from bhi_fhir.paths import profiles_dir

PERIOD = "2031"
_ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # LOINC LL358-3
_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
          "44253-3", "44260-8"]  # US Core PHQ-9 example


def _phq9(rid: str, patient: str, day: str, total: int) -> dict[str, Any]:
    points = [min(3, max(0, total - 3 * i)) for i in range(9)]  # item 1 first, item 9 last
    return {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
            "questionnaire": "http://loinc.org/q/44249-1", "subject": {"reference": patient},
            "authored": day,
            "item": [{"linkId": link, "answer": [{"valueCoding": {"system": LOINC,
                                                                  "code": _ANSWERS[p]}}]}
                     for link, p in zip(_ITEMS, points, strict=True)]}


def _visit(rid: str, patient: str, day: str) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": rid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB"},
            "type": [{"coding": [{"system": CPT, "code": "99213"}]}],
            "subject": {"reference": patient},
            "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:30:00Z"}}


def _depression(rid: str, patient: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid,
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed"}]},
            "code": {"coding": [{"system": ICD10CM, "code": "F32.1"}]},
            "subject": {"reference": patient}, "onsetDateTime": "2030-01-01"}


def _antidepressant(rid: str, patient: str, day: str) -> dict[str, Any]:
    system, code = sorted(codes("Adult Depression Medications"))[0].split("|", 1)
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active",
            "intent": "order", "subject": {"reference": patient}, "authoredOn": day,
            "medicationCodeableConcept": {"coding": [{"system": f"http://{system}",
                                                      "code": code}]}}


def _population(case: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    p = {n: f"Patient/m{case[:12]}-{n}" for n in ("neg", "fol", "gap", "rem", "not")}
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": ref.split("/")[1], "birthDate": "1980-05-05"}
        for ref in p.values()]
    resources += [
        _visit(f"m{case[:12]}-e1", p["neg"], "2031-03-04"),
        _phq9(f"m{case[:12]}-q1", p["neg"], "2031-03-04", 3),
        _visit(f"m{case[:12]}-e2", p["fol"], "2031-03-04"),
        _phq9(f"m{case[:12]}-q2", p["fol"], "2031-03-04", 18),
        _antidepressant(f"m{case[:12]}-m2", p["fol"], "2031-03-05"),
        _visit(f"m{case[:12]}-e3", p["gap"], "2031-03-04"),
        _phq9(f"m{case[:12]}-q3", p["gap"], "2031-03-04", 18),
    ]
    for key, last in (("rem", 3), ("not", 12)):
        resources += [
            _depression(f"m{case[:12]}-d-{key}", p[key]),
            _visit(f"m{case[:12]}-v-{key}", p[key], "2030-03-10"),
            _phq9(f"m{case[:12]}-i-{key}", p[key], "2030-03-10", 15),
            _phq9(f"m{case[:12]}-l-{key}", p[key], "2031-03-10", last),
        ]
    return resources, p


def _measure(base: str, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["measure", "--period", PERIOD, "--server", base, *extra])
    return result.exit_code, result.stdout, result.stderr


def _reports(http: httpx.Client, base: str, identifier: str) -> list[dict[str, Any]]:
    bundle = http.get(f"{base}/MeasureReport",
                      params={"identifier": f"{BHI_IDENTIFIER}|{identifier}"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


@pytest.fixture
def seeded(fhir_base_url: str, run_tag: Any, case_id: str) -> Any:
    resources, patients = _population(case_id)
    measures = [json.loads(p.read_text()) for p in sorted(
        (profiles_dir() / "measures").glob("*.json"))]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": run_tag.tag(r), "request": {"method": "PUT",
                                                 "url": f"{r['resourceType']}/{r['id']}"}}
        for r in [*measures, *resources]]}

    async def seed() -> None:
        async with FhirClient(fhir_base_url) as fhir:
            await fhir.transaction(bundle)

    asyncio.run(seed())
    written: list[str] = []
    yield patients, written
    with httpx.Client(headers={"Accept": "application/fhir+json",
                               "Cache-Control": "no-cache"}, timeout=60) as http:
        for identifier in written:
            for report in _reports(http, fhir_base_url, identifier):
                http.delete(f"{fhir_base_url}/MeasureReport/{report['id']}")


def test_measure_on_hapi_decides_writes_once_and_validates(fhir_base_url: str,
                                                           seeded: Any) -> None:
    patients, written = seeded
    code, out, err = _measure(fhir_base_url, "--format", "csv")
    assert code == 0, err
    rows = {(r.split(",")[0], r.split(",")[1]): r for r in out.strip().splitlines()[1:]}
    # columns: measure, patient, stratum, initial-population, denominator, exclusion,
    # exception, numerator, care_gap, evaluated
    assert rows[("CMS2", patients["neg"])].split(",")[3:8] == ["1", "1", "0", "0", "1"]
    assert rows[("CMS2", patients["fol"])].split(",")[3:8] == ["1", "1", "0", "0", "1"]
    gap = rows[("CMS2", patients["gap"])]
    assert gap.split(",")[3:8] == ["1", "1", "0", "0", "0"]
    assert "positive PHQ-9 on 2031-03-04" in gap
    assert rows[("CMS159", patients["rem"])].split(",")[2:8] == ["18+", "1", "1", "0", "0", "1"]
    not_yet = rows[("CMS159", patients["not"])]
    assert not_yet.split(",")[7] == "0" and "was 12 on 2031-03-10" in not_yet

    code, out, err = _measure(fhir_base_url, "--format", "json", "--write")
    assert code == 0, err
    assert "create 9" in err  # 2 summaries, 2 subject lists, 3 + 2 individual reports
    identifiers = [e["resource"]["identifier"][0]["value"] for e in json.loads(out)["entry"]]
    written.extend(identifiers)
    code, out, err = _measure(fhir_base_url, "--format", "json", "--write")
    assert code == 0, err
    assert "create 0, update 0, unchanged 9" in err
    with httpx.Client(headers={"Accept": "application/fhir+json",
                               "Cache-Control": "no-cache"}, timeout=60) as http:
        stored = {i: _reports(http, fhir_base_url, i) for i in identifiers}
        assert all(len(found) == 1 for found in stored.values()), stored
        gap_report = stored[f"measure-report:CMS2:{PERIOD}:individual:{patients['gap']}"][0]
        numerator = next(p for p in gap_report["group"][0]["population"]
                     if p["code"]["coding"][0]["code"] == "numerator")
        assert "positive PHQ-9" in numerator["extension"][0]["valueString"]
        for report in (gap_report, stored[f"measure-report:CMS159:{PERIOD}:summary"][0],
                       stored[f"measure-report:CMS159:{PERIOD}:subject-list"][0]):
            outcome = http.post(f"{fhir_base_url}/MeasureReport/$validate", json=report,
                                headers={"Content-Type": "application/fhir+json"}).json()
            errors = [i for i in outcome.get("issue", [])
                      if i.get("severity") in ("error", "fatal")]
            assert not errors, errors
        summary = stored[f"measure-report:CMS159:{PERIOD}:summary"][0]
        assert summary["group"][0]["measureScore"]["value"] == 0.5


def test_measure_resources_are_bundled() -> None:
    assert sorted(p.name for p in Path(profiles_dir(), "measures").glob("*.json")) == [
        "Measure-CMS159.json", "Measure-CMS2.json"]
