"""CDS Hooks against a real HAPI: a hook request without prefetch is answered by fetching the
record from ``fhirServer`` with ``fhirAuthorization``, and gives the same cards as a request
whose prefetch a CDS client filled by running the discovery's templates on the same server.

HAPI here is unprotected, so the access token is a dummy the service must still send (it is
the only credential it has for the EHR). The EHR's JWT is signed with the unit tests' key and
its JWKS served by respx; every other request passes through to HAPI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from bhi_fhir.billing import time_entry
from bhi_fhir.codes import BHI_IDENTIFIER
from smart_app.cds import PREFETCH, SERVICE_ID
from smart_app.cds_cards import BILLING_SUMMARY
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.instruments.screen_records import phq9_response
from tests.integration.conftest import CASE_SYSTEM, RunTag
from tests.smart_app.test_cds import (
    APP_URL,
    CRISIS_POINTS,
    EHR_ISS,
    JWKS_URL,
    KEY,
    KID,
    TODAY,
    _jwk,
    token,
)
from tests.sync.clinic import delete_tagged

SEEDED = ("Encounter", "Consent", "QuestionnaireResponse", "Patient")
DUMMY_TOKEN = "dummy-ehr-access-token"  # HAPI is unprotected; the service must send it anyway


@pytest.fixture
def app(fhir_base_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the jti store
    settings = Settings(  # type: ignore[call-arg]
        base_url=APP_URL, cookie_secure=False, today=TODAY,
        registrations=[EhrRegistration(iss=fhir_base_url, client_id="bhi")],
        cds_clients={EHR_ISS: JWKS_URL},
    )
    with respx.mock(assert_all_called=False) as router:
        router.get(JWKS_URL).mock(return_value=httpx.Response(
            200, json={"keys": [_jwk(KEY, KID)]}))
        # The app's reads carry the EHR's token; the tests' own seeding and cleanup do not.
        fhir_calls = router.route(url__startswith=fhir_base_url, headers={
            "Authorization": f"Bearer {DUMMY_TOKEN}"}).pass_through()
        router.route(url__startswith=fhir_base_url).pass_through()
        with TestClient(create_app(settings), base_url=APP_URL) as client:
            client.fhir_calls = fhir_calls  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def patient_id(fhir_base_url: str, run_tag: RunTag, case_id: str,
               plan_resources: list[str]) -> Iterator[str]:
    """A patient with a crisis PHQ-9 two days ago and 26 consented CoCM minutes this month
    (logged by a care manager of the plan: ``plan_resources`` puts its Practitioners)."""
    pid = f"cds-{case_id[:8]}"
    start = datetime(2026, 11, 20, 15, tzinfo=UTC)
    resources = [
        {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01"},
        phq9_response(pid, "2026-11-24T10:00:00Z", rid=f"{pid}-qr", points=CRISIS_POINTS),
        {"resourceType": "Consent", "id": f"{pid}-consent", "status": "active",
         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                               "code": "treatment"}]},
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "patient": {"reference": f"Patient/{pid}"}, "dateTime": "2026-01-05"},
        time_entry(id=f"{pid}-time", patient=f"Patient/{pid}",
                   clinician="Practitioner/bhcm-garcia", start=start,
                   end=start + timedelta(minutes=26), mode="phone",
                   identifier_system=BHI_IDENTIFIER, identifier_value=f"time:{pid}"),
    ]
    case_tag = {"system": CASE_SYSTEM, "code": case_id}
    entries = []
    for resource in resources:
        run_tag.tag(resource)["meta"]["tag"].append(case_tag)
        entries.append({"resource": resource, "request": {
            "method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}})
    seeded = httpx.post(fhir_base_url, json={"resourceType": "Bundle", "type": "transaction",
                                             "entry": entries}, timeout=120)
    assert seeded.status_code == 200, seeded.text
    yield pid
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}", ("Task", "ServiceRequest", *SEEDED))


def _hook(pid: str, base: str, prefetch: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": base,
        "fhirAuthorization": {"access_token": DUMMY_TOKEN, "token_type": "Bearer",
                              "expires_in": 300, "scope": "patient/*.rs", "subject": "cds"},
        "context": {"userId": "Practitioner/pr1", "patientId": pid},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def _call(app: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = app.post(f"/cds-services/{SERVICE_ID}", json=body,
                        headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def _client_prefetch(base: str, pid: str) -> dict[str, Any]:
    """What a CDS client sends: each discovery template run on its FHIR server."""
    with httpx.Client(timeout=60, headers={"Cache-Control": "no-cache"}) as http:
        return {key: http.get(f"{base}/{template.replace('{{context.patientId}}', pid)}").json()
                for key, template in PREFETCH.items()}


def test_no_prefetch_fetches_with_fhir_authorization_and_gives_the_same_cards(
    app: TestClient, fhir_base_url: str, patient_id: str
) -> None:
    calls = app.fhir_calls  # type: ignore[attr-defined]
    fetched = _call(app, _hook(patient_id, fhir_base_url, None))
    # The record was read from HAPI with the EHR's token (one batch of the template searches).
    assert any(c.request.method == "POST" and "QuestionnaireResponse" in c.request.content.decode()
               for c in calls.calls)
    summaries = {c["summary"] for c in fetched}
    assert BILLING_SUMMARY.format(short=10, code="99492") in summaries  # 26 of 36 minutes
    assert any(c["indicator"] == "critical" for c in fetched)  # item 9 answered 1

    reads = calls.call_count
    prefetched = _call(app, _hook(patient_id, fhir_base_url,
                                  _client_prefetch(fhir_base_url, patient_id)))
    assert prefetched == fetched
    # With every template prefetched the record is not read again (the caseload count, a
    # search of other patients' plans, may still be).
    assert all(c.request.method == "GET" and "/CarePlan" in str(c.request.url)
               for c in calls.calls[reads:])


def test_accepted_suggestions_are_not_suggested_again(
    app: TestClient, fhir_base_url: str, patient_id: str, run_tag: RunTag, case_id: str
) -> None:
    """The EHR accepts the crisis card's suggestions as the spec says (spec "Action": a
    suggestion's actions processed as one FHIR transaction, fhirServer the base of each
    entry's inferred full URL); the next hook suggests none of it again."""
    (crisis,) = [c for c in _call(app, _hook(patient_id, fhir_base_url, None))
                 if c["indicator"] == "critical"]
    for suggestion in crisis["suggestions"]:
        entries = []
        for action in suggestion["actions"]:
            assert action["type"] == "create"
            resource = run_tag.tag(dict(action["resource"]))
            resource["meta"]["tag"].append({"system": CASE_SYSTEM, "code": case_id})
            kind = resource["resourceType"]
            entries.append({"fullUrl": f"{fhir_base_url}/{kind}/{resource['id']}",
                            "resource": resource, "request": {"method": "POST", "url": kind}})
        accepted = httpx.post(fhir_base_url, json={"resourceType": "Bundle",
                                                   "type": "transaction", "entry": entries},
                              timeout=60)
        assert accepted.status_code == 200, accepted.text
    after = _call(app, _hook(patient_id, fhir_base_url, None))
    offered = {s["uuid"] for c in after for s in c.get("suggestions", [])}
    assert not offered & {s["uuid"] for s in crisis["suggestions"]}
