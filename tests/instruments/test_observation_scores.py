"""Screening Observations → Score, table-driven; every row cites its source.

Sources: US Core Observation Screening Assessment
(https://hl7.org/fhir/us/core/StructureDefinition-us-core-observation-screening-assessment.html,
panel + hasMember items with LA codes + total, category survey) and its
PHQ-9 examples (Observation-PHQ9-panel-example-44249-1; the 44261-6 total with
``valueString: "12"``); Synthea 3.3 output (a DiagnosticReport with the
panel code whose one ``result`` is the total Observation, ``valueQuantity`` ``{score}``, no
items, ``urn:uuid:`` references in transaction Bundles); bands and cut points per Kroenke 2001,
Arroll 2010, Spitzer 2006, US Core AUDIT-C and HEDIS DSF-E.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.instruments import score_response, screening_observations
from bhi_fhir.instruments.observation_scores import (
    INVALID_TOTAL,
    ITEMS_UNKNOWN,
    SUICIDE_ITEM_UNKNOWN,
    bundle_references,
    merge_screening_scores,
    scores_from_observations,
)
from bhi_fhir.instruments.result import NOT_FINAL
from tests.instruments.build import FREQ, PHQ9, frequency, response

US_CORE = "US Core observation-screening-assessment"
SYNTHEA = "Synthea 3.3 output"
WHEN = "2026-11-02T10:00:00Z"
SURVEY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "survey"}]}]


def obs(oid: str, code: str, value: dict[str, Any] | None = None, *, status: str = "final",
        subject: str = "Patient/p-1", when: str = WHEN, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "status": status, "category": SURVEY,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject}, "effectiveDateTime": when, **(value or {}), **extra,
    }
    return resource


def quantity(value: float) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": "{score}",
                              "system": "http://unitsofmeasure.org", "code": "{score}"}}


def answer(code: str) -> dict[str, Any]:
    return {"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": code}]}}


def refs(*ids: str) -> list[dict[str, str]]:
    return [{"reference": f"Observation/{i}"} for i in ids]


def report(rid: str, code: str, *results: str, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "DiagnosticReport", "id": rid, "status": status,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p-1"}, "effectiveDateTime": WHEN,
            "result": refs(*results)}


def phq9_panel(points: dict[str, int], total: int | None) -> list[dict[str, Any]]:
    """A US Core PHQ-9 panel: item Observations (LA codes) + total, members of 44249-1."""
    members = [obs(f"i-{key}", key, answer(FREQ[p])) for key, p in points.items()]
    if total is not None:
        members.append(obs("total", "44261-6", quantity(total)))
    panel = obs("panel", "44249-1", hasMember=refs(*(str(m["id"]) for m in members)))
    return [*members, panel]


def one(resources: list[dict[str, Any]], **kwargs: Any) -> Any:
    scores = scores_from_observations(resources, **kwargs)
    assert len(scores) == 1, scores
    return scores[0]


# --- a total alone: total, band and positive from it; item level unknown ----------------------
@pytest.mark.parametrize(
    ("code", "value", "sex", "instrument", "total", "severity", "positive", "flags"),
    [
        pytest.param("44261-6", {"valueString": "12"}, None, "phq9", 12, "moderate", True,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phq9-valueString-uscore"),
        pytest.param("44261-6", quantity(9), None, "phq9", 9, "mild", False,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phq9-9-negative-Kroenke-2001"),
        pytest.param("44261-6", {"valueInteger": 10}, None, "phq9", 10, "moderate", True,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phq9-10-positive-Kroenke-2001"),
        pytest.param("44261-6", quantity(27), None, "phq9", 27, "severe", True,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phq9-27-max-Kroenke-2001"),
        pytest.param("55758-7", quantity(2), None, "phq2", 2, None, False,
                     {ITEMS_UNKNOWN}, id="phq2-2-negative-Arroll-2010"),
        pytest.param("55758-7", quantity(3), None, "phq2", 3, None, True,
                     {ITEMS_UNKNOWN}, id="phq2-3-positive-Arroll-2010"),
        pytest.param("89204-2", quantity(9), None, "phqa", 9, "mild", False,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phqa-9-NIMH-ASQ"),
        pytest.param("89204-2", quantity(10), None, "phqa", 10, "moderate", True,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="phqa-10-NIMH-ASQ"),
        pytest.param("70274-6", quantity(9), None, "gad7", 9, "mild", False,
                     {ITEMS_UNKNOWN}, id="gad7-9-negative-Spitzer-2006"),
        pytest.param("70274-6", quantity(10), None, "gad7", 10, "moderate", True,
                     {ITEMS_UNKNOWN}, id="gad7-10-positive-Spitzer-2006"),
        pytest.param("75626-2", quantity(2), "female", "auditc", 2, None, False,
                     {ITEMS_UNKNOWN}, id="auditc-female-2-US-Core-AUDIT-C"),
        pytest.param("75626-2", quantity(3), "female", "auditc", 3, None, True,
                     {ITEMS_UNKNOWN}, id="auditc-female-3-US-Core-AUDIT-C"),
        pytest.param("75626-2", quantity(3), "male", "auditc", 3, None, False,
                     {ITEMS_UNKNOWN}, id="auditc-male-3-US-Core-AUDIT-C"),
        pytest.param("75626-2", quantity(4), "male", "auditc", 4, None, True,
                     {ITEMS_UNKNOWN}, id="auditc-male-4-US-Core-AUDIT-C"),
        pytest.param("99046-5", quantity(9), None, "epds", 9, "below-threshold", False,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="epds-9-HEDIS-DSF-E"),
        pytest.param("99046-5", quantity(10), None, "epds", 10, "possible-depression", True,
                     {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, id="epds-10-HEDIS-DSF-E"),
    ],
)
def test_total_alone(code: str, value: dict[str, Any], sex: str | None, instrument: str,
                     total: int, severity: str | None, positive: bool, flags: set[str]) -> None:
    score = one([obs("t", code, value)], patient_sex=sex)
    assert (score.instrument, score.total, score.severity, score.positive, score.complete) == (
        instrument, total, severity, positive, True)
    assert set(score.flags) == flags
    assert not score.suicide_risk  # unknown, not "no risk": the flag says so
    assert (score.response_ref, score.subject_ref, score.authored) == (
        "Observation/t", "Patient/p-1", WHEN)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(quantity(28), id="phq9-above-range-27-Kroenke-2001"),
        pytest.param(quantity(-1), id="below-0"),
        pytest.param(quantity(12.5), id="not-whole"),
        pytest.param({"valueString": "twelve"}, id="not-a-number"),
        pytest.param({"dataAbsentReason": {"text": "asked, declined"}}, id="no-value"),
    ],
)
def test_invalid_total_has_no_band(value: dict[str, Any]) -> None:
    score = one([obs("t", "44261-6", value)])
    assert (score.total, score.severity, score.positive, score.complete) == (
        None, None, None, False)
    assert {INVALID_TOTAL, SUICIDE_ITEM_UNKNOWN} <= set(score.flags)


def test_practice_cut_point_applies_to_a_total() -> None:
    # PHQ-2 threshold configurable (Arroll 2010: >= 2 or >= 3).
    assert one([obs("t", "55758-7", quantity(2))], cut_points={"phq2": 2}).positive is True


# --- Synthea: DiagnosticReport(panel) → result → total -----------------------------------
@pytest.mark.parametrize(
    ("panel", "total_code", "instrument"),
    [
        pytest.param("44249-1", "44261-6", "phq9", id="phq9-synthea-Synthea-3-3"),
        pytest.param("55757-9", "55758-7", "phq2", id="phq2-synthea-Synthea-3-3"),
        pytest.param("89206-7", "89204-2", "phqa", id="phqa-synthea-Synthea-3-3"),
        pytest.param("69737-5", "70274-6", "gad7", id="gad7-synthea-Synthea-3-3"),
        pytest.param("72109-2", "75626-2", "auditc", id="auditc-synthea-Synthea-3-3"),
    ],
)
def test_synthea_report_and_total_are_one_screen(panel: str, total_code: str,
                                                  instrument: str) -> None:
    resources = [obs("t", total_code, quantity(3)), report("dr", panel, "t")]
    score = one(resources)
    assert (score.instrument, score.total, score.response_ref) == (
        instrument, 3, "DiagnosticReport/dr")
    assert ITEMS_UNKNOWN in score.flags


def test_synthea_transaction_bundle_urn_uuid_references() -> None:
    # Synthea 3.3: transaction Bundles reference the patient and the result by urn:uuid fullUrl.
    total = obs("t", "44261-6", quantity(15), subject="urn:uuid:pat")
    dr = report("dr", "44249-1")
    dr["result"] = [{"reference": "urn:uuid:obs-t"}]
    dr["subject"] = {"reference": "urn:uuid:pat"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:pat", "resource": {"resourceType": "Patient", "id": "p-9"}},
        {"fullUrl": "urn:uuid:obs-t", "resource": total},
        {"fullUrl": "urn:uuid:dr", "resource": dr},
    ]}
    urls = bundle_references(bundle)
    score = one([total, dr], references=urls)
    assert (score.subject_ref, score.response_ref, score.severity) == (
        "Patient/p-9", "DiagnosticReport/dr", "moderately-severe")
    # Without the mapping the patient is unknown, never guessed.
    assert one([total, dr]).subject_ref is None


# --- US Core panel with items (US Core screening): the items decide
# ----------------------------------------
@pytest.mark.parametrize(
    ("item9", "suicide"),
    [
        pytest.param(0, False, id="item9-LA6568-5-not-at-all-Kroenke-2001"),
        pytest.param(1, True, id="item9-LA6569-3-several-days-Kroenke-2001"),
        pytest.param(3, True, id="item9-LA6571-9-nearly-every-day-Kroenke-2001"),
    ],
)
def test_panel_items_decide_suicide_risk(item9: int, suicide: bool) -> None:
    points = dict(zip(PHQ9, [1, 1, 1, 1, 1, 1, 1, 1, item9], strict=True))
    score = one(phq9_panel(points, 8 + item9))
    assert (score.instrument, score.total, score.complete, score.response_ref) == (
        "phq9", 8 + item9, True, "Observation/panel")
    assert score.suicide_risk is suicide
    assert not {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN} & set(score.flags)
    assert score.items["44260-8"] == item9


def test_panel_items_without_total_are_summed() -> None:
    score = one(phq9_panel(dict(zip(PHQ9, [2] * 9, strict=True)), None))
    assert (score.total, score.severity, score.positive) == (18, "moderately-severe", True)


def test_panel_total_disagreeing_with_items_is_flagged() -> None:
    # US Core examples: recompute a carried total and flag a mismatch.
    score = one(phq9_panel(dict(zip(PHQ9, [1] * 9, strict=True)), 12))
    assert score.total == 9
    assert "total-mismatch" in score.flags


@pytest.mark.parametrize(
    ("item9", "flags", "suicide"),
    [
        pytest.param(None, {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}, False,
                     id="item9-missing-unknown-answered-item-bounds"),
        pytest.param(2, {ITEMS_UNKNOWN, "suicide-risk"}, True, id="item9-present-flags-bounds"),
        pytest.param(0, {ITEMS_UNKNOWN}, False, id="item9-present-zero"),
    ],
)
def test_partial_items_with_total(item9: int | None, flags: set[str], suicide: bool) -> None:
    points = dict(zip(PHQ9[:4], [3, 3, 3, 3], strict=True))
    if item9 is not None:
        points["44260-8"] = item9
    score = one(phq9_panel(points, 14))
    assert (score.total, score.severity, score.positive, score.complete) == (
        14, "moderate", True, True)
    assert set(score.flags) == flags
    assert score.suicide_risk is suicide


def test_partial_items_ruling_out_the_total_are_flagged() -> None:
    # US Core examples: a carried total is checked against the items; 4 items at 3 already exceed
    # 11.
    score = one(phq9_panel(dict(zip(PHQ9[:4], [3, 3, 3, 3], strict=True)), 11))
    assert "total-mismatch" in score.flags


def test_phq9_difficulty_item_is_read_not_scored() -> None:
    # LOINC: 69722-7 has its own answer list (LA6572-7 …) and is not part of the total.
    resources = phq9_panel(dict(zip(PHQ9, [1] * 8 + [0], strict=True)), 8)
    resources.insert(0, obs("i-diff", "69722-7", answer("LA6572-7")))
    resources[-1]["hasMember"].append({"reference": "Observation/i-diff"})
    score = one(resources)
    assert (score.total, score.flags) == (8, ())


def test_report_pointing_at_a_panel_is_one_screen() -> None:
    resources = [*phq9_panel(dict(zip(PHQ9, [0] * 9, strict=True)), 0),
                 report("dr", "44249-1", "panel")]
    score = one(resources)
    assert (score.response_ref, score.total) == ("DiagnosticReport/dr", 0)


def test_items_as_components_of_the_total() -> None:
    components = [{"code": {"coding": [{"system": "http://loinc.org", "code": k}]},
                   **answer(FREQ[2])} for k in PHQ9]
    score = one([obs("t", "44261-6", quantity(18), component=components)])
    assert (score.total, score.items["44260-8"], score.suicide_risk) == (18, 2, True)


def test_loose_items_and_total_at_the_same_time_are_one_screen() -> None:
    # A flowsheet: item rows and the total row with the same effective time, no panel.
    rows = [obs(f"i{n}", k, answer(FREQ[1 if n < 8 else 0])) for n, k in enumerate(PHQ9)]
    rows.append(obs("t", "44261-6", quantity(8)))
    rows.append(obs("later", "44261-6", quantity(3), when="2026-12-01T10:00:00Z"))
    first, second = scores_from_observations(rows)
    assert (first.total, first.complete, first.flags) == (8, True, ())
    assert (second.total, second.flags) == (3, (ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN))


# --- status ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total_status", "report_status", "scored"),
    [
        pytest.param("entered-in-error", "final", False, id="total-entered-in-error"),
        pytest.param("cancelled", "final", False, id="total-cancelled"),
        pytest.param("final", "entered-in-error", False, id="report-entered-in-error"),
        pytest.param("final", "cancelled", False, id="report-cancelled"),
        pytest.param("final", "final", True, id="both-final"),
    ],
)
def test_errors_and_cancellations_are_not_scored(total_status: str, report_status: str,
                                                 scored: bool) -> None:
    # FHIR R4 Observation.status / DiagnosticReport.status.
    resources = [obs("t", "44261-6", quantity(12), status=total_status),
                 report("dr", "44249-1", "t", status=report_status)]
    assert bool(scores_from_observations(resources)) is scored


@pytest.mark.parametrize(
    ("status", "score_status", "final"),
    [
        pytest.param("final", "completed", True, id="final"),
        pytest.param("amended", "amended", True, id="amended"),
        pytest.param("corrected", "amended", True, id="corrected"),
        pytest.param("preliminary", "preliminary", False, id="preliminary-not-final"),
        pytest.param("registered", "registered", False, id="registered-not-final"),
    ],
)
def test_status_final_or_not(status: str, score_status: str, final: bool) -> None:
    score = one([obs("t", "44261-6", quantity(12), status=status)])
    assert score.status == score_status
    assert (score.total is not None, score.positive is not None) == (final, final)
    assert score.final is final
    assert (NOT_FINAL in score.flags) is (not final)


def test_preliminary_panel_keeps_suicide_risk() -> None:
    resources = phq9_panel(dict(zip(PHQ9, [0] * 8 + [2], strict=True)), 2)
    resources[-1]["status"] = "preliminary"
    score = one(resources)
    assert (score.total, score.suicide_risk) == (None, True)


# --- our own Observations round-trip, and de-duplication against responses --------------------
def test_own_observations_read_back_as_the_response_scored() -> None:
    qr = response(frequency(PHQ9, [2, 2, 1, 1, 1, 2, 1, 1, 1]), canonical="http://loinc.org/q/44249-1")
    from_qr = score_response(qr)
    written = screening_observations(from_qr, qr)
    for o in written:  # as a server stores them: ids assigned, urn:uuid references resolved
        o["id"] = o["identifier"][0]["value"].rsplit("#", 1)[1].replace("/", "-")
    urls = {f"urn:uuid:{u}": f"Observation/{o['id']}" for o in written
            for u in [_uuid(o)]}
    read = one(written, references=urls)
    assert (read.instrument, read.total, read.severity, read.positive, read.items) == (
        from_qr.instrument, from_qr.total, from_qr.severity, from_qr.positive, from_qr.items)
    # derivedFrom the response: the response's own score stands alone.
    merged = merge_screening_scores([from_qr], written, references=urls)
    assert merged == [from_qr]


def _uuid(resource: dict[str, Any]) -> str:
    from bhi_fhir.instruments import full_url

    return full_url(resource["identifier"][0]["value"]).removeprefix("urn:uuid:")


@pytest.mark.parametrize(
    ("when", "total", "subject", "kept"),
    [
        pytest.param("2026-11-02T18:30:00Z", 12, "Patient/p-1", 1, id="same-day-same-total"),
        pytest.param("2026-11-02", 12, "Patient/p-1", 1, id="date-only-same-day"),
        pytest.param("2026-11-03T09:00:00Z", 12, "Patient/p-1", 2, id="next-day"),
        pytest.param("2026-11-02T18:30:00Z", 11, "Patient/p-1", 2, id="other-total"),
        pytest.param("2026-11-02T18:30:00Z", 12, "Patient/p-2", 2, id="other-patient"),
    ],
)
def test_unlinked_observation_matches_a_response(when: str, total: int, subject: str,
                                                 kept: int) -> None:
    qr = response(frequency(PHQ9, [2, 2, 1, 1, 1, 2, 1, 1, 1]), canonical="http://loinc.org/q/44249-1")
    from_qr = score_response(qr)  # total 12, authored 2026-11-02T10:00:00Z
    ehr_total = obs("ehr", "44261-6", quantity(total), when=when, subject=subject)
    assert len(merge_screening_scores([from_qr], [ehr_total])) == kept


def test_one_response_absorbs_one_unlinked_observation() -> None:
    qr = response(frequency(PHQ9, [1] * 9), canonical="http://loinc.org/q/44249-1")
    twins = [obs("a", "44261-6", quantity(9)), obs("b", "44261-6", quantity(9),
                                                     when="2026-11-02T11:00:00Z")]
    assert len(merge_screening_scores([score_response(qr)], twins)) == 2


def test_observation_derived_from_an_absent_response_is_kept() -> None:
    total = obs("t", "44261-6", quantity(12),
                derivedFrom=[{"reference": "QuestionnaireResponse/elsewhere"}])
    merged = merge_screening_scores([], [total])
    assert [s.response_ref for s in merged] == ["Observation/t"]


def test_unrelated_observations_and_reports_are_ignored() -> None:
    resources = [obs("bp", "85354-9", quantity(120)),
                 report("cbc", "58410-2", "bp"),
                 obs("prapare", "93025-5", component=[])]
    assert scores_from_observations(resources) == []


# A PHQ-9 screen as Synthea 3.3.0 wrote it (a seed-42 run of tools/synthea; synthetic): the
# report and its total in a transaction Bundle, everything referenced by urn:uuid (Synthea 3.3).
SYNTHEA_PHQ9_BUNDLE: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"fullUrl": "urn:uuid:c5a17333-816d-683f-2549-f0f6c934c3e0",
     "resource": {"resourceType": "Patient", "id": "c5a17333-816d-683f-2549-f0f6c934c3e0",
                  "gender": "female"},
     "request": {"method": "POST", "url": "Patient"}},
    {"fullUrl": "urn:uuid:f026aa83-31de-3eb9-0d4d-56e33ffc8e56",
     "resource": {
         "resourceType": "DiagnosticReport", "id": "f026aa83-31de-3eb9-0d4d-56e33ffc8e56",
         "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "44249-1",
                              "display": "PHQ-9 quick depression assessment panel [Reported.PHQ]"}],
                  "text": "PHQ-9 quick depression assessment panel [Reported.PHQ]"},
         "subject": {"reference": "urn:uuid:c5a17333-816d-683f-2549-f0f6c934c3e0"},
         "encounter": {"reference": "urn:uuid:a4b698e5-a7b9-a168-9e07-b9729fde3a04"},
         "effectiveDateTime": "2026-10-31T18:13:17+00:00",
         "issued": "2026-10-31T18:13:17.507+00:00",
         "result": [{"reference": "urn:uuid:6424a355-199d-fa0a-a8b6-4258cdd6be63",
                     "display": "Patient Health Questionnaire 9 item (PHQ-9) total score "
                                "[Reported]"}]},
     "request": {"method": "POST", "url": "DiagnosticReport"}},
    {"fullUrl": "urn:uuid:6424a355-199d-fa0a-a8b6-4258cdd6be63",
     "resource": {
         "resourceType": "Observation", "id": "6424a355-199d-fa0a-a8b6-4258cdd6be63",
         "meta": {"profile": [
             "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-survey"]},
         "status": "final",
         "category": [{"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/observation-category",
             "code": "survey", "display": "Survey"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6",
                              "display": "Patient Health Questionnaire 9 item (PHQ-9) total "
                                         "score [Reported]"}],
                  "text": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"},
         "subject": {"reference": "urn:uuid:c5a17333-816d-683f-2549-f0f6c934c3e0"},
         "encounter": {"reference": "urn:uuid:a4b698e5-a7b9-a168-9e07-b9729fde3a04"},
         "effectiveDateTime": "2026-10-31T18:13:17+00:00",
         "issued": "2026-10-31T18:13:17.507+00:00",
         "valueQuantity": {"value": 15, "unit": "{score}", "system": "http://unitsofmeasure.org",
                           "code": "{score}"}},
     "request": {"method": "POST", "url": "Observation"}},
]}


def test_synthea_output_as_written() -> None:
    resources = [e["resource"] for e in SYNTHEA_PHQ9_BUNDLE["entry"]]
    score = one(resources, references=bundle_references(SYNTHEA_PHQ9_BUNDLE))
    assert (score.instrument, score.total, score.severity, score.positive) == (
        "phq9", 15, "moderately-severe", True)  # Kroenke 2001 bands, positive >= 10
    assert (score.subject_ref, score.response_ref, score.authored) == (
        "Patient/c5a17333-816d-683f-2549-f0f6c934c3e0",
        "DiagnosticReport/f026aa83-31de-3eb9-0d4d-56e33ffc8e56", "2026-10-31T18:13:17+00:00")
    assert set(score.flags) == {ITEMS_UNKNOWN, SUICIDE_ITEM_UNKNOWN}  # Synthea 3.3: no items
