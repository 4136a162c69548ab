"""The feedback Questionnaires (profiles/questionnaires/feedback) as a contract: the canonical
URLs and linkIds the dashboard reads stay as they are, every item has an answer list and a
stated purpose, and both are valid R4 (fhir.resources R4B and the SMART client's strict models).
They are the practice's own questionnaires: no CAHPS item is reproduced (AHRQ, "Modifying and
Naming Your CAHPS Survey": a modified CAHPS survey is not a CAHPS survey)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bhi_fhir.paths import profiles_dir
from bhi_fhir.practice_plan import PracticePlanError, load_practice_plan, parse_practice_plan
from bhi_fhir.workflow.feedback import PATIENT_SURVEY, STAFF_SURVEY
from bhi_fhir.workflow.validate import validate_resource

PURPOSE = "https://bhi-fhir.dev/fhir/StructureDefinition/item-purpose"
LINK_IDS = {
    PATIENT_SURVEY: ["reach-care-manager", "listened", "explained", "involved-in-decisions",
                     "followed-up-as-promised", "knows-crisis-contact", "perceived-change",
                     "overall-rating"],
    STAFF_SURVEY: ["role", "handoff-timely", "handoff-information", "caseload-review-held",
                   "caseload-review-focus", "crisis-protocol-known", "crisis-directory-current",
                   "tools-registry", "tools-time-recording", "caseload-manageable"],
}


def _load(name: str) -> dict[str, Any]:
    path = profiles_dir() / "questionnaires" / "feedback" / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", ["patient-experience", "staff-workflow"])
def test_feedback_questionnaire_contract(name: str) -> None:
    q = _load(name)
    assert q["url"] in LINK_IDS and q["version"] == "1.0.0"
    assert [i["linkId"] for i in q["item"]] == LINK_IDS[q["url"]]
    assert "practice's own" in q["publisher"] and "CAHPS survey" not in q["title"]
    for item in q["item"]:
        assert item["type"] == "choice" and len(item["answerOption"]) >= 3
        assert not item.get("required")  # every item optional
        (purpose,) = [e["valueString"] for e in item["extension"] if e["url"] == PURPOSE]
        assert purpose
    validate_resource(q)
    from fhirclient.models.questionnaire import Questionnaire

    Questionnaire(q, strict=True)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        pytest.param({"staff_every_months": 5}, "feedback.staff_every_months",
                     id="staff-cadence-must-divide-the-year"),
        pytest.param({"staff": ["Patient/p1"]}, "feedback.staff.0", id="staff-are-practitioners"),
        pytest.param({"patient_after_enrollment_weeks": 0},
                     "feedback.patient_after_enrollment_weeks", id="weeks-from-one"),
    ],
)
def test_practice_plan_feedback_errors_name_the_key(
    section: dict[str, Any], problem: str
) -> None:
    from bhi_fhir.paths import examples_dir

    base = load_practice_plan(examples_dir() / "practice-plan.toml").model_dump(mode="json")
    with pytest.raises(PracticePlanError) as caught:
        parse_practice_plan(base | {"feedback": section})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
