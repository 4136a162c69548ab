"""A patient's facts (bhi_fhir.timeline); rows cite their public sources."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER
from bhi_fhir.instruments import Score, score_response
from bhi_fhir.timeline import (
    OWN_ENROLLMENT,
    EnrollmentRule,
    TimelineSettings,
    build_timeline,
    patient_of,
    rule_of_identifier,
)
from tests.instruments.build import GAD7, PHQ9, audit, frequency, response
from tests.workflow.helpers import (
    PATIENT,
    TODAY,
    careplan,
    consent,
    contact,
    day,
    fired,
    patient,
    plan,
    score,
    timeline,
)


def test_facts_are_plain_json() -> None:
    tl = timeline([score("phq9", 12, 40), score("phq9", 6, 3)], [patient(), careplan(35)])
    assert json.loads(json.dumps(tl.facts)) == tl.facts


def test_enrollment_from_our_active_careplan() -> None:
    # CarePlan category 718347000 (FHIR care-plan-category value set); the episode starts with the
    # referral: period.start = enrollment date) (our own CarePlan).
    facts = timeline([], [careplan(20)]).facts
    assert facts["enrolled"] is True
    assert facts["enrollment"]["start"] == day(20)
    assert facts["weeksInTreatment"] == 2
    assert "otherCarePlans" not in facts


def _elsewhere(plan: dict[str, Any]) -> dict[str, Any]:
    return {**plan, "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.999", "value": "9"}]}


_PROTOCOL = "https://bhi-fhir.dev/fhir/PlanDefinition/bhi-protocol"
_EHR_SYSTEM = "urn:example:riverside-ehr:bhi-careplan"


@pytest.mark.parametrize(
    ("plan", "rule", "enrolled"),
    [
        # what bhi-fhir writes (its identifier system) is enrollment
        pytest.param(careplan(20), OWN_ENROLLMENT, True, id="ours-by-identifier"),
        # NC Medicaid, AMA: an ended episode (a completed plan) is no enrollment, ours or not
        pytest.param(careplan(20, status="completed"), OWN_ENROLLMENT, False, id="ours-completed"),
        # decision 10: another service's mental-health care plan (FHIR care-plan-category 718347000)
        # is context
        pytest.param(_elsewhere(careplan(20)), OWN_ENROLLMENT, False, id="another-service"),
        pytest.param({**_elsewhere(careplan(3650)), "identifier": []}, OWN_ENROLLMENT, False,
                     id="decades-old-no-identifier"),
        # decision 10: a plan instantiating our protocol PlanDefinition is ours
        pytest.param({**_elsewhere(careplan(20)), "instantiatesCanonical": [f"{_PROTOCOL}|0.1"]},
                     OWN_ENROLLMENT, True, id="instantiates-our-protocol"),
        # decision 10 practice-plan rule: the EHR's own BHI CarePlans, by identifier system
        pytest.param({**careplan(20), "identifier": [{"system": _EHR_SYSTEM, "value": "1"}]},
                     EnrollmentRule(identifier_systems=frozenset({_EHR_SYSTEM})), True,
                     id="practice-rule-identifier"),
        pytest.param({**careplan(20), "identifier": [{"system": _EHR_SYSTEM, "value": "1"}]},
                     OWN_ENROLLMENT, False, id="practice-system-without-the-rule"),
        pytest.param({**_elsewhere(careplan(20)), "instantiatesCanonical": ["urn:ehr:bhi"]},
                     EnrollmentRule(instantiates=frozenset({"urn:ehr:bhi"})), True,
                     id="practice-rule-instantiates"),
    ],
)
def test_enrollment_is_our_own_careplan(
    plan: dict[str, Any], rule: EnrollmentRule, enrolled: bool
) -> None:
    facts = build_timeline(PATIENT, [plan], [], TODAY, TimelineSettings(enrollment=rule)).facts
    assert facts["enrolled"] is enrolled
    others = facts.get("otherCarePlans", [])
    # an active mental-health plan that is not the enrollment is shown as context
    assert [o["carePlan"] for o in others] == (
        [] if enrolled or plan["status"] != "active" else ["CarePlan/cp1"]
    )


@pytest.mark.parametrize(
    ("days_before_enrollment", "is_baseline"),
    [(30, True), (31, False)],
    ids=["30-days-before", "31-days-before"],
)
def test_baseline_window(days_before_enrollment: int, is_baseline: bool) -> None:
    # Baseline = first PHQ-9 from 30 days before enrollment onwards.
    early = score("phq9", 20, 60 + days_before_enrollment, ident="early")
    later = score("phq9", 14, 58, ident="later")
    latest = score("phq9", 7, 3, ident="latest")
    target = timeline([early, later, latest], [careplan(60)]).facts["target"]
    expected = "QuestionnaireResponse/early" if is_baseline else "QuestionnaireResponse/later"
    assert target["baseline"]["response"] == expected


def test_improvement_remission_response() -> None:
    # NCQA DRR-E: response ≥50% drop; remission < 5.
    target = timeline(
        [score("phq9", 16, 60), score("phq9", 4, 3)], [careplan(58)]
    ).facts["target"]
    assert target["improvementPercent"] == 75.0
    assert target["remission"] is True and target["response"] is True
    only_baseline = timeline([score("phq9", 16, 60)], [careplan(58)]).facts["target"]
    assert "improvementPercent" not in only_baseline
    assert only_baseline["remission"] is False


def test_primary_target_is_the_positive_instrument() -> None:
    # NCQA DRR-E applies to PHQ-9 and GAD-7; an anxiety patient is followed on GAD-7.
    scores = [score("phq9", 3, 50), score("gad7", 14, 50), score("gad7", 8, 3)]
    assert timeline(scores, [careplan(45)]).facts["target"]["instrument"] == "gad7"


def test_consent_scope_treatment() -> None:
    # CMS MLN909432 consent documented; read as an active Consent with scope treatment.
    assert timeline([], [consent()]).facts["consent"]["onFile"] is True
    inactive = consent()
    inactive["status"] = "inactive"
    assert timeline([], [inactive]).facts["consent"]["onFile"] is False


def test_contacts_include_completed_engage_task() -> None:
    # AIMS Center contact count and last contact date.
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
    # Kroenke 2001 item 9 > 0; Columbia triage any C-SSRS risk; one entry per response.
    scores = [
        score("phq9", 3, 2, item9=1),
        score("cssrs", None, 1, risk="low"),
        score("phq9", 12, 1, item9=0),
    ]
    crises = timeline(scores, []).facts["crises"]
    assert [c["reason"] for c in crises] == ["PHQ-9 item 9 = 1", "C-SSRS risk low"]


def test_review_period() -> None:
    # Bao 2016 review window weeks 8–12.
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


# --- Scores as facts: status, bounds and what is a screen
def _scored(items: list[dict[str, Any]], *, rid: str, days_ago: int = 5,
            status: str = "completed", canonical: str | None = None, sex: str = "female"
            ) -> Score:
    qr = response(items, canonical=canonical, rid=rid, patient="p1", status=status)
    qr["authored"] = day(days_ago)
    return score_response(qr, patient_sex=sex, cut_points=plan().screening.cut_points)


PHQ9_Q = "http://loinc.org/q/44249-1"
PHQ9_8_ITEMS_10 = frequency(PHQ9[:8], [3, 3, 2, 1, 1, 0, 0, 0])  # item 9 missing: 10 to 13


def test_score_fact_exposes_status_and_bounds() -> None:
    facts = timeline([_scored(PHQ9_8_ITEMS_10, rid="part", canonical=PHQ9_Q)]).facts
    fact = facts["latest"]["phq9"]
    assert (fact["status"], fact["complete"], fact["positive"]) == ("completed", False, True)
    assert (fact["totalAtLeast"], fact["totalAtMost"]) == (10, 13)
    assert fact["totalText"] == "at least 10 (incomplete)" and "total" not in fact
    assert "positive-by-bound" in fact["flags"]
    whole = _scored(frequency(PHQ9, [2] * 6 + [0] * 3), rid="whole", canonical=PHQ9_Q)
    fact = timeline([whole]).facts["latest"]["phq9"]
    assert (fact["total"], fact["totalAtLeast"], fact["totalAtMost"], fact["totalText"]) == (
        12, 12, 12, "12")


def test_non_final_response_is_no_screen_but_its_crisis_is_kept() -> None:
    # FHIR R4 QuestionnaireResponse.status: only completed/amended are final; Kroenke 2001 item 9.
    done = _scored(frequency(PHQ9, [2] * 6 + [0] * 3), rid="done", days_ago=10, canonical=PHQ9_Q)
    draft = _scored(frequency(PHQ9, [3] * 8 + [1]), rid="draft", days_ago=1, canonical=PHQ9_Q,
                    status="in-progress")
    facts = timeline([done, draft], [careplan(20)]).facts
    assert facts["latest"]["phq9"]["response"] == "QuestionnaireResponse/done"
    assert [s["status"] for s in facts["scores"]] == ["completed", "in-progress"]
    assert [c["response"] for c in facts["crises"]] == ["QuestionnaireResponse/draft"]
    assert "not final" in facts["crises"][0]["reason"]
    assert facts["measurement"]["last"] == day(10)  # the draft is no measurement
    assert facts["targets"]["phq9"]["followUps"] == 0


def test_entered_in_error_is_no_fact() -> None:
    wrong = _scored(frequency(PHQ9, [3] * 8 + [1]), rid="wrong", canonical=PHQ9_Q,
                    status="entered-in-error")
    facts = timeline([wrong]).facts
    assert (facts["scores"], facts["latest"], facts["crises"]) == ([], {}, [])


AUDIT_MISSING_Q2 = audit(3, None, 0)  # Q2 missing: 3 to 7
PHQ2_Q = "http://loinc.org/q/55757-9"


@pytest.mark.parametrize(
    ("items", "canonical", "status", "gender", "rule", "reason"),
    [
        # answered-item bounds: 8 PHQ-9 items at 10 reach the cut point 10 (Kroenke 2001) whatever
        # item 9 holds
        (PHQ9_8_ITEMS_10, PHQ9_Q, "completed", "female", "engage",
         "PHQ-9 at least 10 (incomplete) on"),
        (frequency(PHQ9[:8], [3, 3, 2, 1, 0, 0, 0, 0]), PHQ9_Q, "completed", "female", "engage",
         None),
        (frequency(PHQ9, [2] * 5 + [0] * 4), PHQ9_Q, "completed", "female", "engage",
         "PHQ-9 10 on"),
        # not final: no screen (FHIR R4 QuestionnaireResponse.status)
        (frequency(PHQ9, [2] * 6 + [0] * 3), PHQ9_Q, "in-progress", "female", "engage", None),
        (PHQ9_8_ITEMS_10, PHQ9_Q, "stopped", "female", "engage", None),
        # GAD-7 6 items at 10 / at 9 (Spitzer 2006)
        (frequency(GAD7[:6], [3, 3, 3, 1, 0, 0]), None, "completed", "female", "engage",
         "GAD-7 at least 10 (incomplete) on"),
        (frequency(GAD7[:6], [3, 3, 3, 0, 0, 0]), None, "completed", "female", "engage", None),
        # PHQ-2 item 1 = 3 reaches 3 (Arroll 2010) -> a PHQ-9; item 1 = 2 undecided
        (frequency(PHQ9[:1], [3]), PHQ2_Q, "completed", "female", "phq9-followup",
         "PHQ-2 at least 3 (incomplete) on"),
        (frequency(PHQ9[:1], [2]), PHQ2_Q, "completed", "female", "phq9-followup", None),
        # AUDIT-C Q1 = 3, Q2 missing: positive for a woman (>= 3), undecided for a man (>= 4)
        # (US Core Questionnaire-AUDIT-C); the rule reads the practice plan's cut points
        (AUDIT_MISSING_Q2, None, "completed", "female", "brief-intervention",
         "AUDIT-C at least 3 (incomplete) on"),
        (AUDIT_MISSING_Q2, None, "completed", "male", "brief-intervention", None),
        (audit(4, None, 0), None, "completed", "male", "brief-intervention",
         "AUDIT-C at least 4 (incomplete) on"),
        # AUDIT-C "Never" on Q1 skips Q2-Q3: complete, total 0, nothing to do (Babor 2001)
        (audit(0, None, None), None, "completed", "female", "brief-intervention", None),
    ],
    ids=["phq9-bound-10-engages", "phq9-bound-9-undecided", "phq9-total-10-engages",
         "phq9-in-progress", "phq9-stopped-bound", "gad7-bound-10-engages",
         "gad7-bound-9-undecided", "phq2-bound-3-phq9", "phq2-bound-2-undecided",
         "auditc-bound-3-female", "auditc-bound-3-male-undecided", "auditc-bound-4-male",
         "auditc-never-skips"],
)
def test_rules_act_on_certain_screens(items: list[dict[str, Any]], canonical: str | None,
                                      status: str, gender: str, rule: str,
                                      reason: str | None) -> None:
    score = _scored(items, rid="q", canonical=canonical, status=status, sex=gender)
    writes = fired([score], [patient(gender)]).get(rule, [])
    assert bool(writes) is (reason is not None)
    if reason is not None:
        assert all(reason in str(w.reason) for w in writes)
