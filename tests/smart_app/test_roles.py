"""Who launched the app decides what it offers (smart_app.roles), and the server enforces it.

Sources: SMART App Launch 2.2 scopes-and-launch-context.md ("openid fhirUser": the user is a
Patient, Practitioner, PractitionerRole, RelatedPerson or Person; the v1 → v2 scope map
``.read → .rs``, ``.write → .cud``, ``.* → .cruds``); app-launch.md (the granted ``scope``
may differ from the requested one).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from smart_app.config import DEFAULT_SCOPES
from smart_app.roles import may_write, role_of
from smart_app.sessions import LaunchContext, Session, TokenSet
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import ehr_launch

READ_ONLY = "openid fhirUser patient/*.rs"


@pytest.mark.parametrize(
    ("granted", "kind", "writes"),
    [
        pytest.param("patient/Encounter.cud", "Encounter", True, id="v2-cud"),
        pytest.param("patient/Encounter.c", "Encounter", True, id="v2-create-only"),
        pytest.param("patient/Encounter.u", "Encounter", True, id="v2-update-only"),
        pytest.param("patient/Encounter.rs", "Encounter", False, id="v2-read-search"),
        pytest.param("patient/Encounter.d", "Encounter", False, id="v2-delete-only"),
        pytest.param("user/*.cruds", "Encounter", True, id="v2-wildcard-type"),
        pytest.param("patient/Encounter.write", "Encounter", True, id="v1-write"),
        pytest.param("patient/Encounter.read", "Encounter", False, id="v1-read"),
        pytest.param("patient/*.*", "Encounter", True, id="v1-all"),
        pytest.param("patient/Task.cud", "Encounter", False, id="another-type"),
        pytest.param("system/Encounter.cud", "Encounter", False, id="system-not-a-user"),
        pytest.param("patient/Encounter.cu?category=x", "Encounter", True, id="v2-constrained"),
    ],
)
def test_may_write(granted: str, kind: str, writes: bool) -> None:
    assert may_write(granted, kind) is writes


def _session(fhir_user: str | None, scope: str = DEFAULT_SCOPES) -> Session:
    session = Session(id="x", csrf_token="c", created_at=0)
    session.iss = "https://ehr.example/fhir"
    session.token = TokenSet("a", "Bearer", scope)
    session.context = LaunchContext(patient="p1", fhir_user=fhir_user)
    return session


@pytest.mark.parametrize(
    ("fhir_user", "scope", "kind"),
    [
        pytest.param("Patient/p1", DEFAULT_SCOPES, "patient", id="patient"),
        pytest.param("RelatedPerson/r1", DEFAULT_SCOPES, "patient", id="related-person"),
        pytest.param(
            "https://ehr.example/fhir/Patient/p1", DEFAULT_SCOPES, "patient", id="absolute-url"
        ),
        pytest.param("Practitioner/cm1", DEFAULT_SCOPES, "care-team", id="practitioner"),
        pytest.param("PractitionerRole/r1", DEFAULT_SCOPES, "care-team", id="practitioner-role"),
        pytest.param("Practitioner/cm1", READ_ONLY, "read-only", id="practitioner-read-scopes"),
        pytest.param("Person/x", DEFAULT_SCOPES, "read-only", id="person"),
        pytest.param(None, DEFAULT_SCOPES, "read-only", id="no-fhir-user"),
    ],
)
def test_role_of(fhir_user: str | None, scope: str, kind: str) -> None:
    assert role_of(_session(fhir_user, scope)).kind == kind


def _csrf(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


CARE_TEAM_POSTS = (
    ("/patient/p1/time", {"minutes": "20", "mode": "phone", "entry_id": "0" * 32}),
    ("/patient/p1/consent", {"confirm": "yes"}),
    ("/patient/p1/task/t1", {"action": "complete"}),
    ("/patient/p1/plan/apply", {"digest": "x"}),
)


@pytest.mark.parametrize("user", ["Patient/p1", "RelatedPerson/r1"])
def test_a_patient_gets_the_patient_facing_view_and_no_care_team_action(
    app_client: TestClient, ehr: AuthServerState, user: str
) -> None:
    ehr_launch(app_client, ehr, fhirUser=user)
    page = app_client.get("/patient/p1")
    assert page.status_code == 200
    assert 'id="questionnaires"' in page.text and "/patient/p1/questionnaire/phq9" in page.text
    for care_team_only in ("log-time", "record-consent", "preview-plan", "/registry"):
        assert care_team_only not in page.text
    csrf = _csrf(page.text)
    for path, form in CARE_TEAM_POSTS:  # enforced by the server, not only hidden
        assert app_client.post(path, data={"csrf_token": csrf, **form}).status_code == 403
    assert app_client.get("/patient/p1/plan").status_code == 403
    assert app_client.get("/registry").status_code == 403
    assert ehr.transactions == []


def test_a_patient_opens_their_own_record_only(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.grant_scope = "openid fhirUser user/*.rs user/QuestionnaireResponse.crs"
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    assert app_client.get("/patient/p2").status_code == 403
    assert app_client.get("/patient/p2/questionnaire/phq9").status_code == 403


def test_a_patient_answers_a_questionnaire_scored_and_written_with_provenance(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    form_page = app_client.get("/patient/p1/questionnaire/phq9")
    assert form_page.status_code == 200 and "Little interest or pleasure" in form_page.text
    form_id = form_page.text.split('name="form_id" value="')[1].split('"')[0]
    answers = {f"item-{link}": "1" for link in (
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
        "44253-3")}  # fmt: skip
    base = {"csrf_token": _csrf(form_page.text), "form_id": form_id, **answers}
    partial = app_client.post("/patient/p1/questionnaire/phq9", data=base)
    assert partial.status_code == 400 and "answer every question" in partial.text
    assert ehr.transactions == []  # an incomplete response is never stored
    done = app_client.post(
        "/patient/p1/questionnaire/phq9",
        data={**base, "item-44260-8": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith("notice=saved-crisis")
    (bundle,) = ehr.transactions
    response, provenance = (e["resource"] for e in bundle["entry"])
    assert response["resourceType"] == "QuestionnaireResponse"
    assert response["questionnaire"].startswith("https://bhi-fhir.dev/fhir/Questionnaire/phq9")
    assert response["subject"] == {"reference": "Patient/p1"}
    assert response["author"] == {"reference": "Patient/p1"}
    assert len(response["item"]) == 9
    assert provenance["resourceType"] == "Provenance"
    crisis = app_client.get(done.headers["location"])
    assert 'id="crisis-line"' in crisis.text and "988" in crisis.text


def test_care_team_cannot_fill_in_for_the_patient(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    assert app_client.get("/patient/p1/questionnaire/phq9").status_code == 403


def test_a_practitioner_without_write_scopes_gets_a_read_only_view_with_the_reason(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.grant_scope = READ_ONLY
    ehr_launch(app_client, ehr)
    page = app_client.get("/patient/p1")
    assert page.status_code == 200 and 'id="read-only"' in page.text
    assert "read access only" in page.text and "Encounter" in page.text
    assert 'id="log-time"' not in page.text and 'id="record-consent"' not in page.text
    csrf = _csrf(page.text)
    for path, form in CARE_TEAM_POSTS:
        refused = app_client.post(path, data={"csrf_token": csrf, **form})
        assert refused.status_code == 403 and "read access only" in refused.text
    assert ehr.transactions == []
