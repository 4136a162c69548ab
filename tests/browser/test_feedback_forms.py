"""The two feedback forms in Chromium, over the real HAPI behind the SMART EHR fixture: a patient
answers the patient experience survey from their portal, a care manager answers the staff
workflow survey; both land on the server as QuestionnaireResponses of the surveys' canonical
URLs, each with its Provenance. Screenshots: test-artifacts/screenshots/feedback-*.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bhi_fhir.workflow.feedback import PATIENT_SURVEY, STAFF_SURVEY
from tests.browser.test_ehr_launch import app_url, ehr, seeded  # noqa: F401  (fixtures)
from tests.smart_app.auth_server import AuthServerState

FHIR_JSON = {"Accept": "application/fhir+json"}


def _launch(page: Any, ehr: AuthServerState, app_url: str, patient: str, user: str) -> None:  # noqa: F811
    launch = ehr.new_launch(patient=patient, fhirUser=user)
    page.goto(f"{app_url}/launch?iss={ehr.fhir_base}&launch={launch}")


def _answer_every_item(page: Any, choice: int) -> None:
    for group in page.locator("fieldset.question").all():
        options = group.locator("input[type=radio]")
        options.nth(min(choice, options.count() - 1)).check()


def test_a_patient_answers_the_patient_experience_survey(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
    hapi: str,
    screenshots: Path,
) -> None:
    _launch(page, ehr, app_url, seeded, f"Patient/{seeded}")
    page.wait_for_selector("#questionnaires")
    page.click("#questionnaires a[href$='/questionnaire/patient-experience']")
    page.wait_for_selector("#questionnaire")
    assert page.locator("fieldset.question").count() == 8
    _answer_every_item(page, 2)
    page.screenshot(path=str(screenshots / "feedback-patient-experience-form.png"), full_page=True)
    page.click("#questionnaire button[type=submit]")
    page.wait_for_selector("#portal-notice")
    assert "your feedback was saved" in page.inner_text("#portal-notice")
    page.screenshot(path=str(screenshots / "feedback-patient-experience-saved.png"),
                    full_page=True)

    found = httpx.get(
        f"{hapi}/QuestionnaireResponse",
        params={"subject": f"Patient/{seeded}", "questionnaire": PATIENT_SURVEY},
        headers=FHIR_JSON,
    ).json()
    (response,) = [e["resource"] for e in found.get("entry", [])]
    assert response["status"] == "completed" and len(response["item"]) == 8
    provenance = httpx.get(f"{hapi}/Provenance",
                           params={"target": f"QuestionnaireResponse/{response['id']}"},
                           headers=FHIR_JSON).json()
    assert provenance.get("total", len(provenance.get("entry", []))) >= 1


def test_a_care_manager_answers_the_staff_workflow_survey(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
    hapi: str,
    screenshots: Path,
) -> None:
    _launch(page, ehr, app_url, seeded, "Practitioner/bhcm-okafor")
    page.wait_for_selector("#scores-chart")
    page.goto(f"{app_url}/feedback/staff")
    page.wait_for_selector("#questionnaire")
    assert page.locator("fieldset.question").count() == 10
    _answer_every_item(page, 3)
    page.screenshot(path=str(screenshots / "feedback-staff-workflow-form.png"), full_page=True)
    page.click("#questionnaire button[type=submit]")
    page.wait_for_selector("#feedback-notice")
    assert "your feedback was saved" in page.inner_text("#feedback-notice")
    page.screenshot(path=str(screenshots / "feedback-staff-workflow-saved.png"), full_page=True)

    found = httpx.get(
        f"{hapi}/QuestionnaireResponse",
        params={"author": "Practitioner/bhcm-okafor", "questionnaire": STAFF_SURVEY,
                "_sort": "-_lastUpdated", "_count": "1"},
        headers=FHIR_JSON,
    ).json()
    (response,) = [e["resource"] for e in found.get("entry", [])]
    try:
        assert "subject" not in response and len(response["item"]) == 10
        assert response["source"] == {"reference": "Practitioner/bhcm-okafor"}
    finally:  # not a patient's: the seeded patient's clean-up does not remove it
        httpx.delete(f"{hapi}/QuestionnaireResponse/{response['id']}", headers=FHIR_JSON)
