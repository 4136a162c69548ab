"""The feedback forms (smart_app.portal): the patient experience survey in the portal and on a
call, the staff workflow survey; each stored once, with its Provenance, by the one writer.

Who may do what follows smart_app.roles (SMART App Launch 2.2 "openid fhirUser"): a patient
fills in their own survey only; the care team records the patient's survey on a call; the
staff survey is a clinician's own; every POST needs the session's CSRF token.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from bhi_fhir.workflow.feedback import PATIENT_SURVEY, STAFF_SURVEY
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import ehr_launch

PATIENT_FORM = "/patient/p1/questionnaire/patient-experience"


def _csrf(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def _form_id(html: str) -> str:
    return html.split('name="form_id" value="')[1].split('"')[0]


def _filled(html: str, **answers: str) -> dict[str, str]:
    return {"csrf_token": _csrf(html), "form_id": _form_id(html)} | {
        f"item-{link}": value for link, value in answers.items()}


def test_the_patient_fills_in_the_survey_from_their_page(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    assert PATIENT_FORM in app_client.get("/patient/p1").text
    page = app_client.get(PATIENT_FORM)
    assert page.status_code == 200 and "reach them as soon as you needed" in page.text
    empty = app_client.post(PATIENT_FORM, data=_filled(page.text))
    assert empty.status_code == 400 and "at least one question" in empty.text
    assert ehr.transactions == []  # nothing stored for an empty form
    data = _filled(page.text, **{"listened": "3", "overall-rating": "4"})
    done = app_client.post(PATIENT_FORM, data=data, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("notice=feedback-saved")
    (bundle,) = ehr.transactions
    response, provenance = (e["resource"] for e in bundle["entry"])
    assert response["questionnaire"] == f"{PATIENT_SURVEY}|1.0.0"
    assert response["subject"] == response["author"] == {"reference": "Patient/p1"}
    assert [(i["linkId"], i["answer"][0]["valueCoding"]["code"]) for i in response["item"]] == [
        ("listened", "always"), ("overall-rating", "excellent")]
    assert provenance["resourceType"] == "Provenance"
    assert bundle["entry"][0]["request"]["ifNoneExist"].startswith("identifier=")
    # a double submit of the same form stores it once (the server matches the identifier)
    again = app_client.post(PATIENT_FORM, data=data, follow_redirects=False)
    assert again.status_code == 303


def test_a_patient_cannot_fill_in_anothers_survey_or_the_staff_survey(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.grant_scope = "openid fhirUser user/*.rs user/QuestionnaireResponse.crs"
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    csrf = _csrf(app_client.get("/patient/p1").text)
    assert app_client.get("/patient/p2/questionnaire/patient-experience").status_code == 403
    posted = {"csrf_token": csrf, "form_id": "0" * 32, "item-listened": "1"}
    assert app_client.post("/patient/p2/questionnaire/patient-experience",
                           data=posted).status_code == 403
    assert app_client.get("/feedback/staff").status_code == 403
    assert app_client.post("/feedback/staff", data=posted).status_code == 403
    assert app_client.get("/patient/p1/questionnaire/staff-workflow").status_code == 404
    assert ehr.transactions == []


def test_the_care_manager_records_the_patients_survey_on_a_call(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)  # Practitioner/cm1, care-team scopes
    assert 'id="record-feedback"' in app_client.get("/patient/p1").text
    page = app_client.get(PATIENT_FORM)
    assert page.status_code == 200 and 'id="on-call"' in page.text
    done = app_client.post(PATIENT_FORM, data=_filled(page.text, **{"knows-crisis-contact": "2"}),
                           follow_redirects=False)
    assert done.status_code == 303 and "notice=feedback-recorded" in done.headers["location"]
    (bundle,) = ehr.transactions
    response = bundle["entry"][0]["resource"]
    assert response["author"] == {"reference": "Practitioner/cm1"}
    assert response["source"] == response["subject"] == {"reference": "Patient/p1"}
    # the screens stay the patient's own
    assert app_client.get("/patient/p1/questionnaire/phq9").status_code == 403


def test_a_read_only_clinician_cannot_record_the_survey(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.grant_scope = "openid fhirUser patient/*.rs"
    ehr_launch(app_client, ehr)
    assert app_client.get(PATIENT_FORM).status_code == 403
    assert ehr.transactions == []


def test_staff_answer_their_own_survey(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr_launch(app_client, ehr, fhirUser="Practitioner/psych1")
    page = app_client.get("/feedback/staff")
    assert page.status_code == 200 and "caseload review" in page.text
    data = _filled(page.text, **{"role": "2", "crisis-directory-current": "1"})
    done = app_client.post("/feedback/staff", data=data, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("notice=feedback-saved")
    (bundle,) = ehr.transactions
    response, provenance = (e["resource"] for e in bundle["entry"])
    assert response["questionnaire"] == f"{STAFF_SURVEY}|1.0.0"
    assert response["author"] == response["source"] == {"reference": "Practitioner/psych1"}
    assert "subject" not in response
    assert [i["linkId"] for i in response["item"]] == ["role", "crisis-directory-current"]
    assert provenance["resourceType"] == "Provenance"
    assert "feedback-saved" not in page.text
    assert "your feedback was saved" in app_client.get(done.headers["location"]).text


def test_every_feedback_post_needs_the_csrf_token(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    for path in (PATIENT_FORM, "/feedback/staff"):
        page = app_client.get(path)
        data = _filled(page.text, listened="1", role="1")
        for token in ("", "forged"):
            refused = app_client.post(path, data=data | {"csrf_token": token})
            assert refused.status_code == 403 and "security token" in refused.text
    assert ehr.transactions == []


def test_not_knowing_the_crisis_contact_shows_the_practices_crisis_line(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    # The survey item's purpose: the crisis protocol's first level (someone to contact, 988;
    # SAMHSA 2020) reaches the patient; "no" (0) or "not sure" (1) shows it at once.
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    for choice, shown in (("0", True), ("1", True), ("2", False)):
        page = app_client.get(PATIENT_FORM)
        done = app_client.post(PATIENT_FORM, data=_filled(page.text, **{
            "knows-crisis-contact": choice}), follow_redirects=False)
        saved = app_client.get(done.headers["location"]).text
        assert ('id="crisis-line"' in saved) is shown and "your feedback was saved" in saved
        assert "Your care team will also contact you" not in saved


def test_recording_the_survey_on_a_call_completes_the_open_survey_task(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.resources["Task/t9"] = {
        "resourceType": "Task", "id": "t9", "meta": {"versionId": "2"},
        "identifier": [{"system": "https://bhi-fhir.dev/fhir/identifier",
                        "value": "patient-feedback:CarePlan/cp1:week-8"}],
        "status": "requested", "intent": "order", "for": {"reference": "Patient/p1"},
    }
    ehr_launch(app_client, ehr)
    page = app_client.get(PATIENT_FORM)
    app_client.post(PATIENT_FORM, data=_filled(page.text, listened="2"), follow_redirects=False)
    (bundle,) = ehr.transactions
    _, _, task, provenance = (e["resource"] for e in bundle["entry"])
    assert task["status"] == "completed" and task["id"] == "t9"
    assert task["output"] == [{"type": {"text": "questionnaire response"},
                               "valueReference": {"reference": bundle["entry"][0]["fullUrl"]}}]
    assert bundle["entry"][2]["request"] == {"method": "PUT", "url": "Task/t9",
                                             "ifMatch": 'W/"2"'}
    assert provenance["target"] == [{"reference": "Task/t9"}]
