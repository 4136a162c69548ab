"""MeasureReports (FHIR R4 https://hl7.org/fhir/R4/measurereport.html) from measure outcomes,
their idempotent write plan, and the ``measure`` command over files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, LOINC
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    POPULATIONS,
    Outcome,
    Period,
)
from bhi_fhir.measures.report import (
    CARE_GAP_REASON,
    MEASURES,
    individual_report,
    plan_writes,
    rate,
    subject_list_report,
    summary_report,
)
from bhi_fhir.workflow.plan import identifier_condition

MP = Period.year(2026)
CMS159 = MEASURES["CMS159"]
DEN = {INITIAL_POPULATION, DENOMINATOR}


def _outcome(patient: str, *extra: str, stratum: str | None = "18+",
             reason: str | None = None) -> Outcome:
    return Outcome("CMS159", patient, frozenset(DEN | set(extra)), stratum,
                   ("Encounter/e1", "QuestionnaireResponse/q1"), reason)


OUTCOMES = [
    _outcome("Patient/a", NUMERATOR),
    _outcome("Patient/b", reason="no PHQ-9 between 2026-01-09 and 2026-05-09"),
    _outcome("Patient/c", DENOMINATOR_EXCLUSION),
    _outcome("Patient/d", NUMERATOR, stratum="12-17"),
]


def _count(group: dict[str, Any], code: str) -> int:
    return next(p["count"] for p in group["population"] if p["code"]["coding"][0]["code"] == code)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param(OUTCOMES, round(2 / 3, 4),
                     id="exclusions-leave-the-denominator (eCQM proportion: num/(den-excl-exc))"),
        pytest.param([_outcome("Patient/x", DENOMINATOR_EXCEPTION)], None,
                     id="only-exceptions-no-rate (eCQM proportion: empty denominator)"),
        pytest.param([], None, id="no-patients-no-rate"),
    ],
)
def test_rate(outcomes: list[Outcome], expected: float | None) -> None:
    assert rate(outcomes) == expected


def test_individual_report_carries_evaluated_resources_and_the_care_gap() -> None:
    report = individual_report(CMS159, MP, OUTCOMES[1], "2026-11-30T00:00:00+00:00")
    assert report["type"] == "individual" and report["subject"] == {"reference": "Patient/b"}
    assert report["identifier"] == [{"system": BHI_IDENTIFIER,
                                     "value": "measure-report:CMS159:2026:individual:Patient/b"}]
    assert report["evaluatedResource"] == [{"reference": "Encounter/e1"},
                                           {"reference": "QuestionnaireResponse/q1"}]
    group = report["group"][0]
    numerator = next(p for p in group["population"]
                     if p["code"]["coding"][0]["code"] == NUMERATOR)
    assert numerator["count"] == 0
    assert numerator["extension"] == [{"url": CARE_GAP_REASON,
                                       "valueString": OUTCOMES[1].reason}]
    assert group["stratifier"][0]["stratum"][0]["value"] == {"text": "18+"}
    assert report["period"] == {"start": "2026-01-01", "end": "2026-12-31"}


def test_subject_list_names_each_populations_patients() -> None:
    report = subject_list_report(CMS159, MP, OUTCOMES, "t")
    lists = {c["id"]: [e["item"]["reference"] for e in c["entry"]] for c in report["contained"]}
    assert lists[NUMERATOR] == ["Patient/a", "Patient/d"]
    assert lists[DENOMINATOR_EXCLUSION] == ["Patient/c"]
    assert DENOMINATOR_EXCEPTION not in lists
    numerator = next(p for p in report["group"][0]["population"]
                     if p["code"]["coding"][0]["code"] == NUMERATOR)
    assert numerator["subjectResults"] == {"reference": f"#{NUMERATOR}"}


def test_summary_counts_and_rates_per_stratum() -> None:
    report = summary_report(CMS159, MP, OUTCOMES, "t")
    group = report["group"][0]
    assert _count(group, DENOMINATOR) == 4 and _count(group, NUMERATOR) == 2
    assert group["measureScore"] == {"value": round(2 / 3, 4)}
    strata = {s["value"]["text"]: s for s in group["stratifier"][0]["stratum"]}
    assert strata["18+"]["measureScore"] == {"value": 0.5}
    assert strata["12-17"]["measureScore"] == {"value": 1.0}


def test_write_plan_is_idempotent() -> None:
    first = summary_report(CMS159, MP, OUTCOMES, "2026-11-30T00:00:00+00:00")
    value = first["identifier"][0]["value"]
    [create] = plan_writes([first], {})
    assert create.action == "create" and create.entry is not None
    assert create.entry["request"] == {
        "method": "POST", "url": "MeasureReport",
        "ifNoneExist": identifier_condition(value)}
    stored = {**first, "id": "9", "meta": {"versionId": "1"}, "date": "earlier"}
    again = summary_report(CMS159, MP, OUTCOMES, "2026-12-01T00:00:00+00:00")
    assert [w.action for w in plan_writes([again], {value: stored})] == ["unchanged"]
    changed = summary_report(CMS159, MP, OUTCOMES[:2], "2026-12-01T00:00:00+00:00")
    [update] = plan_writes([changed], {value: stored})
    assert update.action == "update" and update.entry is not None
    assert update.entry["request"] == {"method": "PUT", "url": "MeasureReport/9",
                                       "ifMatch": 'W/"1"'}


def _line(resource: dict[str, Any]) -> str:
    return json.dumps(resource) + "\n"


def _phq9_response(rid: str, day: str, points: list[int]) -> dict[str, Any]:
    answers = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # LOINC LL358-3
    items = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
             "44253-3", "44260-8"]  # Kroenke 2001
    return {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
            "questionnaire": "http://loinc.org/q/44249-1", "subject": {"reference": "Patient/p1"},
            "authored": day,
            "item": [{"linkId": link, "answer": [{"valueCoding": {"system": LOINC,
                                                                  "code": answers[p]}}]}
                     for link, p in zip(items, points, strict=True)]}


def test_measure_command_over_files_scores_responses(tmp_path: Path) -> None:
    """A PHQ-9 response of 18 (positive) at an office visit with no follow-up: CMS2's care gap
    comes out in csv and json, through the one scorer."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(_line(
        {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"}))
    (folder / "Encounter.ndjson").write_text(_line(
        {"resourceType": "Encounter", "id": "e1", "status": "finished",
         "type": [{"coding": [{"system": CPT, "code": "99213"}]}],
         "subject": {"reference": "Patient/p1"},
         "period": {"start": "2026-03-04T09:00:00Z", "end": "2026-03-04T09:30:00Z"}}))
    (folder / "QuestionnaireResponse.ndjson").write_text(
        _line(_phq9_response("q1", "2026-03-04", [2, 2, 2, 2, 2, 2, 2, 2, 2])))
    runner = CliRunner()
    result = runner.invoke(app, ["measure", "--period", "2026", "--input", str(folder),
                                 "--measure", "CMS2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = result.output.strip().splitlines()
    assert rows[0].startswith("measure,patient,stratum,initial-population")
    assert rows[1].startswith("CMS2,Patient/p1,,1,1,0,0,0,")
    assert "positive PHQ-9 on 2026-03-04" in rows[1]
    result = runner.invoke(app, ["measure", "--period", "2026", "--input", str(folder),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    types = [(e["resource"]["measure"].rsplit("/", 1)[1], e["resource"]["type"])
             for e in bundle["entry"]]
    assert types == [("CMS2", "summary"), ("CMS2", "subject-list"), ("CMS2", "individual"),
                     ("CMS159", "summary"), ("CMS159", "subject-list"),
                     ("DSF-E", "summary"), ("DSF-E", "subject-list"), ("DSF-E", "individual"),
                     ("DMS-E", "summary"), ("DMS-E", "subject-list"),
                     ("DRR-E", "summary"), ("DRR-E", "subject-list")]
    individual = bundle["entry"][2]["resource"]
    assert {"reference": "QuestionnaireResponse/q1"} in individual["evaluatedResource"]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        pytest.param(["--period", "26x", "--input", "."], "--period", id="bad-period"),
        pytest.param(["--period", "2026"], "--server", id="no-source"),
        pytest.param(["--period", "2026", "--input", ".", "--write"], "--write",
                     id="write-needs-server"),
        pytest.param(["--period", "2026", "--input", ".", "--measure", "CMS999"], "--measure",
                     id="unknown-measure"),
    ],
)
def test_bad_options_exit_2(args: list[str], hint: str) -> None:
    result = CliRunner().invoke(app, ["measure", *args])
    assert result.exit_code == 2
    assert hint in result.output


@pytest.mark.parametrize("measure_id", sorted(MEASURES))
def test_measure_resource_matches_the_computed_measure(measure_id: str) -> None:
    """profiles/measures holds each computed measure as an R4 Measure: same canonical URL,
    proportion scoring, the populations the reports count and the strata they use."""
    from fhir.resources.R4B.measure import Measure

    from bhi_fhir.paths import profiles_dir

    resource = json.loads((profiles_dir() / "measures" / f"Measure-{measure_id}.json").read_text())
    Measure.model_validate(resource)
    measure = MEASURES[measure_id]
    assert resource["url"] == measure.url
    assert resource["scoring"]["coding"][0]["code"] == "proportion"
    codes = [p["code"]["coding"][0]["code"] for p in resource["group"][0]["population"]]
    assert set(codes) <= set(POPULATIONS) and NUMERATOR in codes
    assert bool(resource["group"][0].get("stratifier")) == bool(measure.strata)
    assert any(a["type"] == "derived-from" for a in resource["relatedArtifact"])
    report = summary_report(measure, MP, [], "2026-11-30T00:00:00+00:00")
    from fhir.resources.R4B.measurereport import MeasureReport

    MeasureReport.model_validate(report)


def test_cms159_reports_have_no_exception_population_and_lists_per_stratum() -> None:
    """CMS159 defines no denominator exceptions (eCQI CMS159v14: "Denominator Exceptions
    None"), so its reports carry none; the subject list names each stratum's patients."""
    report = subject_list_report(CMS159, MP, OUTCOMES, "2026-11-30T00:00:00+00:00")
    group = report["group"][0]
    assert DENOMINATOR_EXCEPTION not in [p["code"]["coding"][0]["code"]
                                         for p in group["population"]]
    ids = {c["id"] for c in report["contained"]}
    assert {"numerator-18plus", "numerator-12-17"} <= ids
    assert group["measureScore"] == {"value": round(2 / 3, 4)}


# An undefined proportion (0/0): the score's value is absent for a reason, as the HL7 Quality
# Measure IG 2.0.0 test case MeasureReport-IGProportion-dev writes it (data-absent-reason
# not-a-number on measureScore._value), which the FHIR validator accepts.
NOT_A_NUMBER = {"_value": {"extension": [{
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    "valueCode": "not-a-number"}]}}


def test_empty_denominator_score_is_absent_for_a_reason() -> None:
    report = summary_report(CMS159, MP, [], "2026-11-30T00:00:00+00:00")
    assert report["group"][0]["measureScore"] == NOT_A_NUMBER


def _drr(patient: str, remission: bool, excluded: bool = False) -> Outcome:
    from bhi_fhir.measures import drre
    from bhi_fhir.measures.common import combine

    base = DEN | ({DENOMINATOR_EXCLUSION} if excluded else set())
    rates = {
        drre.FOLLOW_UP: Outcome("DRR-E", patient, frozenset(base | {NUMERATOR}), "18-64"),
        drre.REMISSION: Outcome("DRR-E", patient,
                                frozenset(base | ({NUMERATOR} if remission else set())),
                                "18-64", (), None if remission else "last PHQ-9 was 9"),
        drre.RESPONSE: Outcome("DRR-E", patient, frozenset(base), "18-64", (),
                               "less than a 50% drop"),
    }
    return combine("DRR-E", patient, rates, "18-64")


@pytest.mark.parametrize("measure_id", ["DSF-E", "DMS-E", "DRR-E"])
def test_several_rate_measure_groups_match_the_measure(measure_id: str) -> None:
    """A measure with several rates is one Measure with one group per rate (FHIR R4
    Measure.group: "a group of population criteria"); each report's groups carry the code of
    the Measure group they count, in the Measure's order."""
    from bhi_fhir.paths import profiles_dir

    measure = MEASURES[measure_id]
    resource = json.loads((profiles_dir() / "measures" / f"Measure-{measure_id}.json").read_text())
    assert [g["code"]["coding"][0]["code"] for g in resource["group"]] == [
        rate for rate, _ in measure.groups]
    report = summary_report(measure, MP, [], "2026-11-30T00:00:00+00:00")
    assert [g["code"] for g in report["group"]] == [g["code"] for g in resource["group"]]
    for group in resource["group"]:
        assert {p["code"]["coding"][0]["code"] for p in group["population"]} == set(
            measure.populations)


def test_several_rate_reports_count_each_rate() -> None:
    from fhir.resources.R4B.measurereport import MeasureReport

    drr = MEASURES["DRR-E"]
    outcomes = [_drr("Patient/a", True), _drr("Patient/b", False),
                _drr("Patient/c", False, excluded=True)]
    summary = summary_report(drr, MP, outcomes, "2026-11-30T00:00:00+00:00")
    MeasureReport.model_validate(summary)
    scores = {g["code"]["coding"][0]["code"]: g["measureScore"] for g in summary["group"]}
    assert scores == {"follow-up": {"value": 1.0}, "remission": {"value": 0.5},
                      "response": {"value": 0.0}}
    listed = subject_list_report(drr, MP, outcomes, "2026-11-30T00:00:00+00:00")
    MeasureReport.model_validate(listed)
    ids = [c["id"] for c in listed["contained"]]
    assert len(ids) == len(set(ids)) and "remission-numerator" in ids
    individual = individual_report(drr, MP, outcomes[1], "2026-11-30T00:00:00+00:00")
    MeasureReport.model_validate(individual)
    remission = next(g for g in individual["group"]
                     if g["code"]["coding"][0]["code"] == "remission")
    numerator = next(p for p in remission["population"]
                     if p["code"]["coding"][0]["code"] == NUMERATOR)
    assert numerator["extension"] == [{"url": CARE_GAP_REASON, "valueString": "last PHQ-9 was 9"}]
    assert outcomes[1].reason == "remission: last PHQ-9 was 9; response: less than a 50% drop"


def test_individual_report_has_every_rate_counting_0_where_the_patient_is_not() -> None:
    """DSF-E's follow-up rate counts only patients with a positive screen (NCQA DSF rate 2);
    the report still has the group (a MeasureReport group per Measure group: the FHIR
    validator's MEASURE_MR_GRP_MISSING_BY_CODE), every population 0 and no rate."""
    from bhi_fhir.measures.common import combine

    dsf = MEASURES["DSF-E"]
    screened = Outcome("DSF-E", "Patient/a", frozenset(DEN | {NUMERATOR}), "18-64")
    outcome = combine("DSF-E", "Patient/a", {"screening": screened}, "18-64")
    report = individual_report(dsf, MP, outcome, "2026-11-30T00:00:00+00:00")
    assert [g["code"]["coding"][0]["code"] for g in report["group"]] == [
        "screening", "follow-up"]
    follow_up = report["group"][1]
    assert {p["count"] for p in follow_up["population"]} == {0}
    assert follow_up["measureScore"] == NOT_A_NUMBER
    excluded = combine("DSF-E", "Patient/b", {"screening": Outcome(
        "DSF-E", "Patient/b", frozenset(DEN | {DENOMINATOR_EXCLUSION}), "18-64")}, "18-64")
    group = individual_report(dsf, MP, excluded, "2026-11-30T00:00:00+00:00")["group"][0]
    assert group["measureScore"] == NOT_A_NUMBER
