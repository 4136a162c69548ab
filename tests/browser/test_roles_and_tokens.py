"""Each role and each end of a token's life, in Chromium, over the real HAPI behind the SMART EHR
fixture (tests/smart_app/auth_server.py): a patient filling in the PHQ-9, a related person, a
read-only clinician, a token the FHIR server stops accepting (refreshed once, then the session
ends and a relaunch brings the clinician back), and a short-lived token without a refresh
token (usable until it expires, then the session-ended page)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bhi_fhir.instruments import score_response
from tests.browser.test_ehr_launch import app_url, ehr, seeded  # noqa: F401  (fixtures)
from tests.smart_app.auth_server import AuthServerState

FHIR_JSON = {"Accept": "application/fhir+json"}


def _launch(page: Any, ehr: AuthServerState, app_url: str, patient: str, user: str) -> None:  # noqa: F811
    launch = ehr.new_launch(patient=patient, fhirUser=user)
    page.goto(f"{app_url}/launch?iss={ehr.fhir_base}&launch={launch}")


def test_a_patient_sees_their_scores_and_fills_in_the_phq9(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
    hapi: str,
    screenshots: Path,
) -> None:
    _launch(page, ehr, app_url, seeded, f"Patient/{seeded}")
    page.wait_for_selector("#scores-chart[data-ready='1']", timeout=30_000)
    assert page.locator("#questionnaires a").count() == 3  # PHQ-9, GAD-7, experience survey
    for care_team in ("#log-time", "#record-consent", "#preview-plan", "#tasks"):
        assert page.locator(care_team).count() == 0
    assert page.locator("nav a[href='/registry']").count() == 0
    page.screenshot(path=str(screenshots / "patient-facing-view.png"), full_page=True)

    page.click("#questionnaires a[href$='/questionnaire/phq9']")
    page.wait_for_selector("#questionnaire")
    for group in page.locator("fieldset.question").all():
        group.locator("input[type=radio]").nth(1).check()  # "Several days" everywhere: 9
    page.click("#questionnaire button[type=submit]")
    page.wait_for_selector("#portal-notice")
    assert "your answers were saved" in page.inner_text("#portal-notice")
    assert page.locator("#crisis-line").count() == 1  # item 9 answered above 0
    page.screenshot(path=str(screenshots / "patient-answered-phq9.png"), full_page=True)

    found = httpx.get(
        f"{hapi}/QuestionnaireResponse",
        params={"subject": f"Patient/{seeded}", "author": f"Patient/{seeded}"},
        headers=FHIR_JSON,
    ).json()
    (response,) = [e["resource"] for e in found.get("entry", [])]
    assert response["questionnaire"].startswith("https://bhi-fhir.dev/fhir/Questionnaire/phq9")
    assert response["status"] == "completed" and len(response["item"]) == 10  # + difficulty
    assert score_response(response).total == 9  # the one scorer; the difficulty item not summed

    # The care team's pages are refused by the server, whatever the page shows.
    answer = page.goto(f"{app_url}/patient/{seeded}/plan")
    assert answer.status == 403
    assert page.goto(f"{app_url}/registry").status == 403


def test_a_related_person_gets_the_patient_facing_view(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
) -> None:
    _launch(page, ehr, app_url, seeded, "RelatedPerson/caregiver-1")
    page.wait_for_selector("#scores-chart[data-ready='1']", timeout=30_000)
    assert "signed in for this person" in page.inner_text(".patient-banner")
    assert page.locator("#log-time").count() == 0


def test_a_practitioner_without_write_scopes_gets_a_read_only_view(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
    screenshots: Path,
) -> None:
    ehr.grant_scope = "openid fhirUser patient/*.rs"
    _launch(page, ehr, app_url, seeded, "Practitioner/bhcm-okafor")
    page.wait_for_selector("#scores-chart[data-ready='1']", timeout=30_000)
    assert "read access only" in page.inner_text("#read-only")
    assert page.locator("#log-time").count() == 0
    assert page.locator("#tasks form").count() == 0
    page.screenshot(path=str(screenshots / "read-only-practitioner.png"), full_page=True)


def test_a_rejected_token_is_refreshed_once_then_the_session_ends_with_a_relaunch(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
    screenshots: Path,
) -> None:
    _launch(page, ehr, app_url, seeded, "Practitioner/bhcm-okafor")
    page.wait_for_selector("#patient-name", timeout=30_000)

    ehr.access_tokens.clear()  # the EHR stops accepting the token: one refresh cures it
    page.reload()
    page.wait_for_selector("#patient-name")
    grants = [c["form"]["grant_type"] for c in ehr.token_requests]
    assert grants == ["authorization_code", "refresh_token"]

    ehr.access_tokens.clear()
    ehr.refresh_tokens.clear()  # now nothing cures it
    answer = page.reload()
    assert answer.status == 401
    assert page.inner_text("h1") == "Your session has ended"
    assert "Could not load" not in page.content() and ehr.base not in page.inner_text("main")
    page.screenshot(path=str(screenshots / "session-ended.png"), full_page=True)

    ehr.standalone_patient, ehr.standalone_user = seeded, "Practitioner/bhcm-okafor"
    page.click("#relaunch")  # a standalone launch at the same EHR
    page.wait_for_selector("#patient-name", timeout=30_000)
    assert page.url == f"{app_url}/patient/{seeded}"


def test_a_short_token_without_refresh_works_until_it_expires(
    page: Any,
    ehr: AuthServerState,  # noqa: F811
    app_url: str,  # noqa: F811
    seeded: str,  # noqa: F811
) -> None:
    ehr.expires_in, ehr.issue_refresh_tokens = 15, False
    _launch(page, ehr, app_url, seeded, "Practitioner/bhcm-okafor")
    page.wait_for_selector("#patient-name", timeout=30_000)  # not "Session expired"
    signed_in = time.time()
    page.reload()
    page.wait_for_selector("#patient-name")
    assert [c["form"]["grant_type"] for c in ehr.token_requests] == ["authorization_code"]
    time.sleep(max(0.0, 15 - (time.time() - signed_in)))
    answer = page.reload()
    assert answer.status == 401 and page.inner_text("h1") == "Your session has ended"
    assert page.locator("#relaunch").count() == 1
