"""``bhi-fhir measure --server`` against a real HAPI: a small population seeded, CMS2 and CMS159
decided per patient, the MeasureReports written twice without duplicates, and ``$validate``;
the same for the HEDIS measures DSF-E, DMS-E and DRR-E (one MeasureReport group per rate).

The measurement period is 2031 for CMS2/CMS159 and 2033 for the HEDIS measures, so no other
test's data falls into it (the summary counts only this population); the reports written are
deleted before the run's cleanup deletes the patients they reference.
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


CMS = ("--measure", "CMS2", "--measure", "CMS159")
HEDIS = ("--measure", "DSF-E", "--measure", "DMS-E", "--measure", "DRR-E")
HEDIS_PERIOD = "2033"


def _total(rid: str, patient: str, day: str, loinc: str, total: int) -> dict[str, Any]:
    """A screening total Observation as EHRs and Synthea hold it (category survey)."""
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "survey"}]}],
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": patient}, "effectiveDateTime": day,
            "valueQuantity": {"value": total, "unit": "{score}",
                              "system": "http://unitsofmeasure.org", "code": "{score}"}}


def _hedis_population(case: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """DSF-E, DMS-E and DRR-E over 2033 (rates below in the test)."""
    tag = f"h{case[:12]}"
    names = ("brief", "pos", "disp", "none", "rem", "nofu", "dead")
    p = {n: f"Patient/{tag}-{n}" for n in names}
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": p[n].split("/")[1], "birthDate": "1980-05-05",
         **({"deceasedDateTime": "2033-05-01"} if n == "dead" else {})} for n in names]
    for n in ("brief", "pos", "disp", "none", "dead"):
        resources.append(_visit(f"{tag}-e-{n}", p[n], "2033-03-04"))
    system, code = sorted(codes("Adult Depression Medications"))[0].split("|", 1)
    resources += [
        _total(f"{tag}-o1", p["brief"], "2033-03-04", "55758-7", 4),  # PHQ-2 positive
        _total(f"{tag}-o2", p["brief"], "2033-03-04", "44261-6", 6),  # PHQ-9 negative
        _phq9(f"{tag}-q-pos", p["pos"], "2033-03-04", 18),
        _phq9(f"{tag}-q-disp", p["disp"], "2033-03-04", 18),
        {"resourceType": "MedicationDispense", "id": f"{tag}-md", "status": "completed",
         "subject": {"reference": p["disp"]}, "whenHandedOver": "2033-03-20",
         "medicationCodeableConcept": {"coding": [{"system": f"http://{system}",
                                                   "code": code}]}},
    ]
    for n in ("rem", "nofu"):
        depression = {**_depression(f"{tag}-d-{n}", p[n]), "onsetDateTime": "2032-01-01"}
        visit = _visit(f"{tag}-v-{n}", p[n], "2033-02-01")
        if n == "rem":
            visit["reasonCode"] = [{"coding": [{"system": ICD10CM, "code": "F32.1"}]}]
        resources += [depression, visit, _phq9(f"{tag}-i-{n}", p[n], "2033-02-01", 15)]
    resources += [_phq9(f"{tag}-l-rem", p["rem"], "2033-07-01", 3),
                  _visit(f"{tag}-v2-nofu", p["nofu"], "2033-06-10")]
    return resources, p


def _measure(base: str, *extra: str, period: str = PERIOD) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["measure", "--period", period, "--server", base, *extra])
    return result.exit_code, result.stdout, result.stderr


def _reports(http: httpx.Client, base: str, identifier: str) -> list[dict[str, Any]]:
    bundle = http.get(f"{base}/MeasureReport",
                      params={"identifier": f"{BHI_IDENTIFIER}|{identifier}"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


@pytest.fixture
def seeded(fhir_base_url: str, run_tag: Any, case_id: str) -> Any:
    resources, patients = _population(case_id)
    yield from _seeded(fhir_base_url, run_tag, resources, patients)


@pytest.fixture
def seeded_hedis(fhir_base_url: str, run_tag: Any, case_id: str) -> Any:
    resources, patients = _hedis_population(case_id)
    yield from _seeded(fhir_base_url, run_tag, resources, patients)


def _seeded(fhir_base_url: str, run_tag: Any, resources: list[dict[str, Any]],
            patients: dict[str, str]) -> Any:
    """Seed the Measures and ``resources``; afterwards delete the MeasureReports written."""
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
    code, out, err = _measure(fhir_base_url, *CMS, "--format", "csv")
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

    code, out, err = _measure(fhir_base_url, *CMS, "--format", "json", "--write")
    assert code == 0, err
    assert "create 9" in err  # 2 summaries, 2 subject lists, 3 + 2 individual reports
    identifiers = [e["resource"]["identifier"][0]["value"] for e in json.loads(out)["entry"]]
    written.extend(identifiers)
    code, out, err = _measure(fhir_base_url, *CMS, "--format", "json", "--write")
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
        "Measure-CMS159.json", "Measure-CMS2.json", "Measure-DMS-E.json", "Measure-DRR-E.json",
        "Measure-DSF-E.json"]


def _score_of(report: dict[str, Any], rate: str) -> Any:
    group = next(g for g in report["group"] if g["code"]["coding"][0]["code"] == rate)
    return group["measureScore"].get("value")


def test_hedis_measures_on_hapi_decide_write_once_and_validate(fhir_base_url: str,
                                                               seeded_hedis: Any) -> None:
    patients, written = seeded_hedis
    code, out, err = _measure(fhir_base_url, *HEDIS, "--format", "csv", period=HEDIS_PERIOD)
    assert code == 0, err
    rows = {(r.split(",")[0], r.split(",")[1]): r for r in out.strip().splitlines()[1:]}
    # DSF-E: PHQ-2 4 then PHQ-9 6 the same day (both Observations) is screened and followed up
    assert rows[("DSF-E/follow-up", patients["brief"])].split(",")[3:8] == [
        "1", "1", "0", "0", "1"]
    assert "positive PHQ-9 18 on 2033-03-04: no follow-up" in rows[
        ("DSF-E/follow-up", patients["pos"])]
    assert rows[("DSF-E/follow-up", patients["disp"])].split(",")[7] == "1"  # dispensed
    assert "no depression screen" in rows[("DSF-E/screening", patients["none"])]
    assert rows[("DSF-E/screening", patients["dead"])].split(",")[5] == "1"  # excluded
    assert "no PHQ-9 between 2033-05-01 and 2033-08-31" in rows[
        ("DMS-E/period-2", patients["nofu"])]
    assert "no PHQ-9 in 120–240 days after 2033-02-01" in rows[
        ("DRR-E/follow-up", patients["nofu"])]
    assert rows[("DRR-E/response", patients["rem"])].split(",")[7] == "1"

    code, out, err = _measure(fhir_base_url, *HEDIS, "--format", "json", "--write",
                              period=HEDIS_PERIOD)
    assert code == 0, err
    reports = [e["resource"] for e in json.loads(out)["entry"]]
    written.extend(r["identifier"][0]["value"] for r in reports)
    # 3 summaries, 3 subject lists, individual: DSF-E 7, DMS-E 2, DRR-E 2
    assert "create 17" in err
    code, out, err = _measure(fhir_base_url, *HEDIS, "--format", "json", "--write",
                              period=HEDIS_PERIOD)
    assert code == 0, err
    assert "create 0, update 0, unchanged 17" in err
    ident = f"measure-report:{{}}:{HEDIS_PERIOD}:{{}}"
    with httpx.Client(headers={"Accept": "application/fhir+json",
                               "Cache-Control": "no-cache"}, timeout=60) as http:
        dsf = _reports(http, fhir_base_url, ident.format("DSF-E", "summary"))[0]
        dms = _reports(http, fhir_base_url, ident.format("DMS-E", "summary"))[0]
        drr = _reports(http, fhir_base_url, ident.format("DRR-E", "summary"))[0]
        assert _score_of(dsf, "screening") == round(5 / 6, 4)
        assert _score_of(dsf, "follow-up") == 0.6
        assert [_score_of(dms, r) for r in ("period-1", "period-2", "period-3")] == [
            1.0, 0.0, None]  # period 3: no depression visit, an empty denominator
        assert [_score_of(drr, r) for r in ("follow-up", "remission", "response")] == [
            0.5, 0.5, 0.5]
        to_check = [
            dsf, dms, drr,
            _reports(http, fhir_base_url, ident.format("DSF-E", "subject-list"))[0],
            _reports(http, fhir_base_url,
                     f"{ident.format('DSF-E', 'individual')}:{patients['dead']}")[0],
            _reports(http, fhir_base_url,
                     f"{ident.format('DRR-E', 'individual')}:{patients['nofu']}")[0],
        ]
        for report in to_check:
            outcome = http.post(f"{fhir_base_url}/MeasureReport/$validate", json=report,
                                headers={"Content-Type": "application/fhir+json"}).json()
            errors = [i for i in outcome.get("issue", [])
                      if i.get("severity") in ("error", "fatal")]
            assert not errors, (report["identifier"][0]["value"], errors)
