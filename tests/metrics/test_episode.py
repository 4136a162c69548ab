"""One patient's episode read from FHIR resources (bhi_fhir.metrics.episode)."""

from __future__ import annotations

from datetime import date
from typing import Any

from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER, BHI_PROTOCOL, SNOMED
from bhi_fhir.measures.common import Period
from bhi_fhir.metrics.episode import (
    is_feedback,
    month_keys,
    patient_episode,
    survey_questionnaires,
)
from bhi_fhir.metrics.program import feedback_results
from bhi_fhir.workflow.feedback import PATIENT_SURVEY, STAFF_SURVEY
from tests.instruments.screen_records import phq9_response

TODAY = date(2026, 6, 30)
PERIOD = Period(date(2026, 1, 1), date(2026, 6, 30))


def careplan(start: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
        "identifier": [{"system": BHI_IDENTIFIER, "value": "enroll.careplan:x"}],
        "instantiatesCanonical": [BHI_PROTOCOL],
        "category": [{"coding": [{"system": SNOMED, "code": "718347000"}]}],
        "subject": {"reference": "Patient/p1"}, "period": {"start": start},
    }


def task(rid: str, code: str, status: str, end: str | None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task", "id": rid, "status": status, "intent": "order",
        "code": {"coding": [{"system": BHI_ACTIVITY, "code": code}]},
        "for": {"reference": "Patient/p1"}, **extra,
    }
    if end:
        resource["executionPeriod"] = {"end": end}
    return resource


def record() -> list[dict[str, Any]]:
    crisis_points = [1, 1, 1, 1, 1, 1, 1, 1, 2]  # item 9 = 2: same-day assessment (Kroenke 2001)
    return [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01"},
        careplan("2026-01-05"),
        phq9_response("p1", "2026-01-04", rid="qr-base"),  # 15: positive baseline
        phq9_response("p1", "2026-02-01", rid="qr-crisis", points=crisis_points),
        task("t-engage", "engage", "completed", "2026-01-07"),  # a contact (timeline rule)
        task("t-review", "psychiatric-review", "completed", "2026-03-20"),
        task("t-review-open", "psychiatric-review", "requested", None),
        task("t-crisis", "suicide-risk-assessment", "completed", "2026-02-01",
             identifier=[{"system": BHI_IDENTIFIER,
                          "value": "crisis-assessment.task:QuestionnaireResponse/qr-crisis"}]),
        {"resourceType": "QuestionnaireResponse", "id": "fb", "status": "completed",
         "questionnaire": "https://bhi-fhir.dev/fhir/Questionnaire/bhi-patient-experience",
         "subject": {"reference": "Patient/p1"}, "authored": "2026-03-01"},
    ]


def test_episode_events() -> None:
    episode = patient_episode(record(), TODAY, None, PERIOD, row={"care_manager": "Ana",
                                                                  "status": ""})
    assert episode["enrolled"] and episode["start"] == "2026-01-05"
    assert episode["care_manager"] == "Ana"
    assert episode["baseline"] == {"date": "2026-01-04", "total": 15}
    assert episode["phq9"] == [["2026-01-04", 15], ["2026-02-01", 10]]
    assert episode["positive_screens"] == ["2026-01-04", "2026-02-01"]
    assert episode["contacts"] == ["2026-01-07"]
    assert episode["reviews"] == ["2026-03-20"]  # the open review Task is not a review
    assert episode["crises"] == [{"date": "2026-02-01", "assessed": "2026-02-01"}]
    assert [r["id"] for r in episode["feedback"]] == ["fb"]


def test_unassessed_crisis() -> None:
    resources = [r for r in record() if r.get("id") != "t-crisis"]
    episode = patient_episode(resources, TODAY, None, PERIOD)
    assert episode["crises"] == [{"date": "2026-02-01", "assessed": None}]


def test_month_keys_stop_at_today() -> None:
    assert month_keys(Period(date(2026, 11, 1), date(2027, 2, 28)), date(2026, 12, 5)) == [
        "2026-11", "2026-12"]


def test_feedback_is_a_completed_survey_response() -> None:
    base = {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "https://bhi-fhir.dev/fhir/Questionnaire/bhi-staff-workflow|0.1.0"}
    assert is_feedback(base)
    assert not is_feedback({**base, "status": "in-progress"})
    assert not is_feedback({**base, "questionnaire": "http://loinc.org/q/44249-1"})


def test_the_bundled_surveys_give_their_questions_and_scale() -> None:
    surveys = survey_questionnaires()
    assert set(surveys) == {PATIENT_SURVEY, STAFF_SURVEY}
    response = {"resourceType": "QuestionnaireResponse", "status": "completed",
                "questionnaire": STAFF_SURVEY, "authored": "2026-03-01",
                "item": [{"linkId": "caseload-manageable",
                          "answer": [{"valueCoding": {"code": "agree"}}]}]}
    metric = feedback_results([response], PERIOD, surveys)
    ((question, answers, mean, top, spread),) = metric.rows
    assert spread == "Agree 1"
    assert question.endswith("My BHI workload is manageable.")
    assert (answers, mean, top) == (1, 4.0, 5.0)  # agree: 4 of 5 (the survey's ordinalValue)


def test_an_unfinished_response_is_no_screen() -> None:
    unfinished = {**phq9_response("p1", "2026-03-10", rid="qr-draft"), "status": "in-progress"}
    episode = patient_episode([*record(), unfinished], TODAY, None, PERIOD)
    assert "2026-03-10" not in episode["positive_screens"]
    assert all(day != "2026-03-10" for day, _ in episode["phq9"])
