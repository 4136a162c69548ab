"""A patient's facts (bhi_fhir.timeline); rows cite bhi-domain.md."""

from __future__ import annotations

import json

import pytest

from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER
from bhi_fhir.timeline import build_timeline, patient_of, rule_of_identifier
from tests.workflow.helpers import (
    PATIENT,
    TODAY,
    careplan,
    consent,
    contact,
    day,
    patient,
    score,
    timeline,
)


def test_facts_are_plain_json() -> None:
    tl = timeline([score("phq9", 12, 40), score("phq9", 6, 3)], [patient(), careplan(35)])
    assert json.loads(json.dumps(tl.facts)) == tl.facts


def test_enrollment_from_active_careplan_with_718347000() -> None:
    # Issue 4 / bhi-domain.md §4.4: category SNOMED 718347000; period.start = enrollment date.
    facts = timeline([], [careplan(20)]).facts
    assert facts["enrolled"] is True
    assert facts["enrollment"]["start"] == day(20)
    assert facts["weeksInTreatment"] == 2
    assert timeline([], [careplan(20, status="completed")]).facts["enrolled"] is False
    other = careplan(20)
    other["category"] = other["category"][:1]  # assess-plan only: not a BHI plan
    assert timeline([], [other]).facts["enrolled"] is False


@pytest.mark.parametrize(
    ("days_before_enrollment", "is_baseline"),
    [(30, True), (31, False)],
    ids=["30-days-before", "31-days-before"],
)
def test_baseline_window(days_before_enrollment: int, is_baseline: bool) -> None:
    # Issue 4: baseline = first PHQ-9 from 30 days before enrollment onwards.
    early = score("phq9", 20, 60 + days_before_enrollment, ident="early")
    later = score("phq9", 14, 58, ident="later")
    latest = score("phq9", 7, 3, ident="latest")
    target = timeline([early, later, latest], [careplan(60)]).facts["target"]
    expected = "QuestionnaireResponse/early" if is_baseline else "QuestionnaireResponse/later"
    assert target["baseline"]["response"] == expected


def test_improvement_remission_response() -> None:
    # §2.1: response ≥50% drop; remission < 5.
    target = timeline(
        [score("phq9", 16, 60), score("phq9", 4, 3)], [careplan(58)]
    ).facts["target"]
    assert target["improvementPercent"] == 75.0
    assert target["remission"] is True and target["response"] is True
    only_baseline = timeline([score("phq9", 16, 60)], [careplan(58)]).facts["target"]
    assert "improvementPercent" not in only_baseline
    assert only_baseline["remission"] is False


def test_primary_target_is_the_positive_instrument() -> None:
    # §2.1 applies to PHQ-9 and GAD-7; an anxiety patient is followed on GAD-7.
    scores = [score("phq9", 3, 50), score("gad7", 14, 50), score("gad7", 8, 3)]
    assert timeline(scores, [careplan(45)]).facts["target"]["instrument"] == "gad7"


def test_consent_scope_treatment() -> None:
    # §4.3 consent documented; issue 4: active Consent with scope treatment.
    assert timeline([], [consent()]).facts["consent"]["onFile"] is True
    inactive = consent()
    inactive["status"] = "inactive"
    assert timeline([], [inactive]).facts["consent"]["onFile"] is False


def test_contacts_include_completed_engage_task() -> None:
    # §2.3 contact count and last contact date.
    task = {
        "resourceType": "Task",
        "id": "t1",
        "status": "completed",
        "code": {"coding": [{"system": BHI_ACTIVITY, "code": "outreach"}]},
        "for": {"reference": PATIENT},
        "executionPeriod": {"end": day(4)},
    }
    facts = timeline([], [careplan(40), contact(20), task]).facts
    assert facts["contacts"] == {"count": 2, "last": day(4), "daysWithout": 4}
    assert timeline([], [careplan(40)]).facts["contacts"]["daysWithout"] == 40


def test_existing_generated_resources_by_identifier() -> None:
    task = {
        "resourceType": "Task",
        "id": "t9",
        "meta": {"versionId": "4"},
        "identifier": [{"system": BHI_IDENTIFIER, "value": "engage:QuestionnaireResponse/q"}],
        "status": "in-progress",
        "for": {"reference": PATIENT},
    }
    tl = timeline([], [task])
    assert tl.facts["existing"] == [
        {
            "identifier": "engage:QuestionnaireResponse/q",
            "rule": "engage",
            "reference": "Task/t9",
            "resourceType": "Task",
            "status": "in-progress",
            "version": "4",
            "active": True,
        }
    ]
    assert tl.facts["openRules"] == ["engage"]
    assert tl.existing["engage:QuestionnaireResponse/q"]["id"] == "t9"


def test_crises_list_every_response() -> None:
    # §1.2 item 9 > 0; §1.6 any C-SSRS risk; one entry per response.
    scores = [
        score("phq9", 3, 2, item9=1),
        score("cssrs", None, 1, risk="low"),
        score("phq9", 12, 1, item9=0),
    ]
    crises = timeline(scores, []).facts["crises"]
    assert [c["reason"] for c in crises] == ["PHQ-9 item 9 = 1", "C-SSRS risk low"]


def test_review_period() -> None:
    # §2.2 review window weeks 8–12.
    assert "reviewPeriod" not in timeline([], [careplan(55)]).facts  # week 7
    assert timeline([], [careplan(56)]).facts["reviewPeriod"] == "weeks-8-12"
    assert timeline([], [careplan(90)]).facts["reviewPeriod"] == "weeks-8-12"  # week 12
    assert timeline([], [careplan(91)]).facts["reviewPeriod"] == "weeks-13-17"


def test_patient_of() -> None:
    assert patient_of({"resourceType": "Patient", "id": "a"}) == "Patient/a"
    assert patient_of({"resourceType": "Task", "for": {"reference": "Patient/b"}}) == "Patient/b"
    assert patient_of({"resourceType": "Consent", "patient": {"reference": "Patient/c"}})
    assert patient_of({"resourceType": "Organization", "id": "o"}) is None
    assert rule_of_identifier("enroll.careplan:QuestionnaireResponse/x") == "enroll"


def test_today_is_an_argument() -> None:
    tl = build_timeline(PATIENT, [careplan(0)], [], TODAY.replace(day=27))
    assert tl.facts["today"] == "2026-11-27"
