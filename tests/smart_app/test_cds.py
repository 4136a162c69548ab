"""CDS Hooks 2.0 service (smart_app/cds.py): discovery, hook calls, cards, JWT, prefetch/fetch.

Shapes are checked against a JSON schema written from the specification's required fields
and value sets (https://cds-hooks.hl7.org/2.0/ — "Discovery", "HTTP Request", "CDS Service
Response": card summary < 140 characters, indicator info|warning|critical, source.label,
suggestion label, action type create|update|delete, link label/url/type absolute|smart). The
specification publishes no JSON schemas; test_cds_thirdparty.py also validates against the JSON
schemas of a third-party implementation's models (HealthChain, PyPI).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm

from bhi_fhir.codes import BHI_IDENTIFIER
from smart_app.cds import ENCOUNTER_SERVICE_ID, PREFETCH, SERVICE_ID
from smart_app.cds_cards import CARD_KINDS
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.instruments.screen_records import phq9_response

APP_URL = "http://testserver"
SERVICE_URL = f"{APP_URL}/cds-services/{SERVICE_ID}"
EHR_ISS = "https://ehr.example"
JWKS_URL = "https://ehr.example/.well-known/jwks.json"
FHIR = "https://ehr.example/fhir"
TODAY = "2026-11-26"

KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())
KID = "ehr-cds-1"


def _jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES384"}


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": EHR_ISS, "sub": "ehr-client", "aud": SERVICE_URL,
                              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    key = overrides.pop("_key", KEY)
    kid = overrides.pop("_kid", KID)
    alg = overrides.pop("_alg", "ES384")
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


# --------------------------------------------------------------------------- the spec's shapes

_CARD = {
    "type": "object",
    "required": ["summary", "indicator", "source"],
    "properties": {
        "uuid": {"type": "string"},
        "summary": {"type": "string", "maxLength": 139},
        "detail": {"type": "string"},
        "indicator": {"enum": ["info", "warning", "critical"]},
        "source": {"type": "object", "required": ["label"],
                   "properties": {"label": {"type": "string"}, "url": {"type": "string"}}},
        "suggestions": {"type": "array", "items": {
            "type": "object", "required": ["label"],
            "properties": {
                "label": {"type": "string"}, "uuid": {"type": "string"},
                "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "items": {
                    "type": "object", "required": ["type", "description"],
                    "properties": {"type": {"enum": ["create", "update", "delete"]},
                                   "description": {"type": "string"},
                                   "resource": {"type": "object",
                                                "required": ["resourceType"]}}}}}}},
        "selectionBehavior": {"enum": ["at-most-one", "any"]},
        "links": {"type": "array", "items": {
            "type": "object", "required": ["label", "url", "type"],
            "properties": {"type": {"enum": ["absolute", "smart"]},
                           "appContext": {"type": "string"}}}},
    },
}
RESPONSE_SCHEMA = {"type": "object", "required": ["cards"],
                   "properties": {"cards": {"type": "array", "items": _CARD}}}
DISCOVERY_SCHEMA = {
    "type": "object", "required": ["services"],
    "properties": {"services": {"type": "array", "items": {
        "type": "object", "required": ["hook", "description", "id"],
        "properties": {"hook": {"type": "string"}, "title": {"type": "string"},
                       "description": {"type": "string"}, "id": {"type": "string"},
                       "prefetch": {"type": "object",
                                    "additionalProperties": {"type": "string"}},
                       "usageRequirements": {"type": "string"}}}}},
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(JWKS_URL).mock(return_value=httpx.Response(
            200, json={"keys": [_jwk(KEY, KID)]}))
        yield router


@pytest.fixture
def client(ehr: respx.MockRouter) -> Iterator[TestClient]:
    settings = Settings(  # type: ignore[call-arg]
        base_url=APP_URL, cookie_secure=False, today=TODAY,
        registrations=[EhrRegistration(iss=FHIR, client_id="bhi")],
        cds_clients={EHR_ISS: JWKS_URL},
    )
    with TestClient(create_app(settings), base_url=APP_URL) as test_client:
        yield test_client


def patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01"}


def prefetch_of(resources: list[dict[str, Any]], pid: str = "p1") -> dict[str, Any]:
    """Every prefetch template answered, as a CDS client would: the Patient and searchsets."""
    out: dict[str, Any] = {"patient": patient(pid)}
    for key, template in PREFETCH.items():
        if key == "patient":
            continue
        kind = template.split("?", 1)[0]
        out[key] = {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": r} for r in resources if r["resourceType"] == kind]}
    return out


def hook_request(prefetch: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                            "context": {"userId": "Practitioner/pr1", "patientId": "p1"}}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def call(client: TestClient, body: dict[str, Any], bearer: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer or token()}"}
    return client.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)


def cards_of(client: TestClient, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = call(client, hook_request(prefetch_of(resources)))
    assert response.status_code == 200, response.text
    jsonschema.validate(response.json(), RESPONSE_SCHEMA)
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def enrolled(start: str) -> dict[str, Any]:
    """bhi-fhir's own active BHI CarePlan (the enrollment), as examples/clinic stores it."""
    return {
        "resourceType": "CarePlan", "id": "cp1", "meta": {"versionId": "1"},
        "identifier": [{"system": BHI_IDENTIFIER,
                        "value": "enroll.careplan:QuestionnaireResponse/qr-0/_history/1"}],
        "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
        "subject": {"reference": "Patient/p1"}, "period": {"start": start},
        "contributor": [{"reference": "Practitioner/bhcm-okafor"}],
    }


# --------------------------------------------------------------------------- discovery


def test_discovery_lists_the_patient_view_service(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    jsonschema.validate(response.json(), DISCOVERY_SCHEMA)
    service, encounter = response.json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == SERVICE_ID
    assert encounter["hook"] == "encounter-start" and encounter["prefetch"] == service["prefetch"]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    kinds = {t.split("?", 1)[0] for t in service["prefetch"].values()}
    assert {"QuestionnaireResponse", "Observation", "CarePlan", "Task", "ServiceRequest",
            "Encounter"} <= kinds
    assert "category=survey" in service["prefetch"]["observation"]  # screens, not vitals


# --------------------------------------------------------------------------- card rules

CRISIS_POINTS = [3, 3, 3, 3, 3, 0, 0, 0, 1]  # item 9 = 1
TEN = [3, 3, 3, 1, 0, 0, 0, 0, 0]
NINE = [3, 3, 3, 0, 0, 0, 0, 0, 0]


SIXTEEN = [3, 3, 3, 3, 3, 1, 0, 0, 0]
EIGHT = [3, 3, 2, 0, 0, 0, 0, 0, 0]


def treated(start: str, follow_up: list[int]) -> list[dict[str, Any]]:
    """Enrolled at ``start`` with a PHQ-9 baseline of 16 and one follow-up on 2026-11-20."""
    return [enrolled(start),
            phq9_response("p1", "2026-09-28T10:00:00Z", rid="qr-base", points=SIXTEEN),
            phq9_response("p1", "2026-11-20T10:00:00Z", rid="qr-follow", points=follow_up)]


CARD = {kind.key: kind for kind in CARD_KINDS}


@pytest.mark.parametrize(
    ("resources", "kind", "expected"),
    [
        # PHQ-9 item 9 > 0 needs same-day follow-up whatever the total (calcipedia PHQ-9,
        # https://www.calcipedia.org/calculators/phq-9-calculator); the plan's
        # crisis.consider_within_days = 14 (practice choice).
        ([phq9_response("p1", "2026-11-12T10:00:00Z", points=CRISIS_POINTS)], "crisis", True),
        ([phq9_response("p1", "2026-11-11T10:00:00Z", points=CRISIS_POINTS)], "crisis", False),
        # Positive depression screen at PHQ-9 total >= 10 (HEDIS DSF; Arroll 2010).
        ([phq9_response("p1", "2026-11-20T10:00:00Z", points=TEN)], "engage", True),
        ([phq9_response("p1", "2026-11-20T10:00:00Z", points=NINE)], "engage", False),
        # Follow-up contact within 4 weeks (Bao 2016); plan handoffs.contact_interval_days
        # = 28: enrolled 28 days ago without contact vs 27.
        ([enrolled("2026-10-29")], "contact", True),
        ([enrolled("2026-10-30")], "contact", False),
        # Psychiatric case review for non-responders from week 8 (Bao 2016); response = PHQ-9
        # drop >= 50 % (NCQA DRR-E): 16 → 9 is a 43.75 % drop, 16 → 8 is 50 %; week 8
        # (56 days) vs week 7 (55 days).
        (treated("2026-10-01", NINE), "review", True),
        (treated("2026-10-01", EIGHT), "review", False),
        (treated("2026-10-02", NINE), "review", False),
    ],
    ids=["crisis-14-days", "crisis-15-days-history", "phq9-10-positive", "phq9-9-negative",
         "no-contact-28-days", "contact-27-days", "week-8-drop-43pc", "week-8-drop-50pc",
         "week-7-drop-43pc"],
)
def test_card_rules(client: TestClient, resources: list[dict[str, Any]], kind: str,
                    expected: bool) -> None:
    cards = cards_of(client, resources)
    found = [c for c in cards if c["summary"] == CARD[kind].summary]
    assert bool(found) is expected, [c["summary"] for c in cards]
    for card in found:
        assert card["indicator"] == CARD[kind].indicator
        assert card["source"]["label"] and card["source"]["url"].startswith("https://")
        assert card["detail"].startswith("**Evidence:**")
        assert "\n" not in card["detail"].split("\n\n")[0]  # the evidence in one line
        assert card["links"] == [{"label": "Open bhi-fhir for this patient",
                                  "url": f"{APP_URL}/launch", "type": "smart"}]
        assert card["suggestions"]
        for suggestion in card["suggestions"]:
            for action in suggestion["actions"]:
                identifiers = [i["value"] for i in action["resource"]["identifier"]
                               if i["system"] == BHI_IDENTIFIER]
                assert identifiers  # the workflow's business identifier


def test_crisis_suggestions_are_the_workflow_writes_and_accepting_twice_writes_once(
    client: TestClient,
) -> None:
    screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    (crisis,) = [c for c in cards_of(client, [screen]) if c["indicator"] == "critical"]
    kinds = {a["resource"]["resourceType"] for s in crisis["suggestions"] for a in s["actions"]}
    assert {"ServiceRequest", "Task"} <= kinds
    again = [c for c in cards_of(client, [screen]) if c["indicator"] == "critical"]
    assert again[0]["suggestions"][0]["uuid"] == crisis["suggestions"][0]["uuid"]  # stable

    # The EHR accepted: the suggested resources now exist (with server ids).
    stored = [screen]
    for n, action in enumerate(a for s in crisis["suggestions"] for a in s["actions"]):
        resource = copy.deepcopy(action["resource"])
        resource["id"] = f"created-{n}"
        resource["meta"] = {"versionId": "1"}
        stored.append(resource)
    after = [c for c in cards_of(client, stored) if c["indicator"] == "critical"]
    created = {w["uuid"] for w in crisis["suggestions"]}
    suggested_again = {s["uuid"] for c in after for s in c.get("suggestions", [])
                       if all(a["type"] == "create" for a in s["actions"])}
    assert not created & suggested_again  # no second create of the same identifiers


# --------------------------------------------------------------------------- prefetch vs fetch


def _batch_answer(resources: list[dict[str, Any]]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        entries = []
        for entry in bundle["entry"]:
            kind = entry["request"]["url"].split("?", 1)[0]
            matched = [patient()] if kind == "Patient" else [
                r for r in resources if r["resourceType"] == kind]
            entries.append({"resource": {"resourceType": "Bundle", "type": "searchset",
                                         "entry": [{"resource": r} for r in matched]},
                            "response": {"status": "200 OK"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response",
                                         "entry": entries})
    return answer


def test_missing_prefetch_is_fetched_with_the_fhir_authorization(
    client: TestClient, ehr: respx.MockRouter
) -> None:
    screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    route = ehr.post(FHIR).mock(side_effect=_batch_answer([screen]))
    # A new patient and several care managers: the caseloads are counted (one search).
    caseloads = ehr.get(f"{FHIR}/CarePlan").mock(return_value=httpx.Response(
        200, json={"resourceType": "Bundle", "type": "searchset", "entry": []}))
    body = hook_request(None, fhirServer=FHIR, fhirAuthorization={
        "access_token": "ehr-token", "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.rs", "subject": "cds"})
    response = call(client, body)
    assert response.status_code == 200, response.text
    assert route.call_count == 1
    assert route.calls[0].request.headers["authorization"] == "Bearer ehr-token"
    assert caseloads.call_count == 1
    fetched = response.json()["cards"]
    prefetched = cards_of(client, [screen])
    assert fetched == prefetched  # the same record, the same cards


@pytest.mark.parametrize(
    ("extra", "status"),
    [({}, 412),  # no prefetch, no fhirServer (spec "Prefetch": 412)
     ({"fhirServer": "https://elsewhere.example/fhir",
       "fhirAuthorization": {"access_token": "t"}}, 412)],  # the token only to a known server
    ids=["no-fhir-server", "unregistered-fhir-server"],
)
def test_no_way_to_read_the_record_is_412(client: TestClient, extra: dict[str, Any],
                                          status: int) -> None:
    assert call(client, hook_request(None, **extra)).status_code == status


# --------------------------------------------------------------------------- JWT


@pytest.mark.parametrize(
    "bearer",
    [
        None,
        "not-a-jwt",
        "iss",
        "aud",
        "exp",
        "jti",
        "sub",
        "signature",
        "hs256",
    ],
    ids=["no-header", "not-a-jwt", "unknown-issuer", "other-audience", "expired", "no-jti",
         "no-sub", "other-key", "hmac"],
)
def test_untrusted_bearer_is_401(client: TestClient, bearer: str | None) -> None:
    now = int(time.time())
    tokens = {
        "not-a-jwt": "not-a-jwt",
        "iss": token(iss="https://rogue.example"),
        "aud": token(aud=f"{APP_URL}/cds-services/other"),
        "exp": token(iat=now - 900, exp=now - 600),
        "jti": token(jti=None),
        "sub": token(sub=None),  # the CDS client's client_id (spec: REQUIRED)
        "signature": token(_key=OTHER_KEY),
        "hs256": jwt.encode({"iss": EHR_ISS, "aud": SERVICE_URL, "exp": now + 60, "iat": now,
                             "jti": "x"}, "secret-secret-secret-secret-secret", algorithm="HS256"),
    }
    headers = {} if bearer is None else {"Authorization": f"Bearer {tokens[bearer]}"}
    response = client.post(f"/cds-services/{SERVICE_ID}", json=hook_request(prefetch_of([])),
                           headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_is_accepted_once(client: TestClient) -> None:
    bearer = token()
    assert call(client, hook_request(prefetch_of([])), bearer).status_code == 200
    assert call(client, hook_request(prefetch_of([])), bearer).status_code == 401


def test_feedback_counts_outcomes_without_phi(client: TestClient,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    when = "2026-11-26T10:00:00Z"
    body = {"feedback": [
        {"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": when,
         "acceptedSuggestions": [{"id": str(uuid.uuid4())}]},
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": when,
         "overrideReason": {"userComment": "Patient p1 declined"}},
    ]}
    bearer = token(aud=SERVICE_URL + "/feedback")  # aud: the URL the request is sent to
    response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=body,
                           headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 200
    assert "'accepted': 1" in caplog.text and "'overridden': 1" in caplog.text
    assert "p1" not in caplog.text and "declined" not in caplog.text


def test_hook_logs_no_patient_data(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    assert cards_of(client, [screen])
    assert "p1" not in caplog.text and "qr-1" not in caplog.text


def test_encounter_start_gets_the_same_cards(client: TestClient) -> None:
    screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    body = hook_request(prefetch_of([screen]), hook="encounter-start")
    body["context"]["encounterId"] = "e1"
    url = f"{APP_URL}/cds-services/{ENCOUNTER_SERVICE_ID}"
    response = client.post(url, json=body, headers={"Authorization": f"Bearer {token(aud=url)}"})
    assert response.status_code == 200, response.text
    assert response.json()["cards"] == cards_of(client, [screen])
    wrong = client.post(url, json=hook_request(prefetch_of([screen])),
                        headers={"Authorization": f"Bearer {token(aud=url)}"})
    assert wrong.status_code == 400  # a patient-view request to the encounter-start service


def test_full_prefetch_needs_no_registered_fhir_server(client: TestClient) -> None:
    """The token is never sent to an unknown server, but a complete prefetch is enough."""
    body = hook_request(prefetch_of([]), fhirServer="https://elsewhere.example/fhir",
                        fhirAuthorization={"access_token": "t"})
    assert call(client, body).status_code == 200


def test_prefetch_of_another_patient_is_refused(client: TestClient) -> None:
    assert call(client, hook_request(prefetch_of([], pid="p2"))).status_code == 400


def test_prefetched_resources_of_other_patients_are_ignored(client: TestClient) -> None:
    other = phq9_response("p2", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    assert cards_of(client, [other]) == []


# --------------------------------------------------------------------------- CORS


ORIGIN = "https://sandbox.cds-hooks.example"


@pytest.mark.parametrize(
    ("method", "path", "cors"),
    [("OPTIONS", f"/cds-services/{SERVICE_ID}", True),  # the browser's preflight of a hook
     ("OPTIONS", f"/cds-services/{SERVICE_ID}/feedback", True),
     ("OPTIONS", "/cds-services", True),
     ("OPTIONS", "/launch", False)],  # the app's pages stay same-origin
    ids=["hook", "feedback", "discovery", "not-cds"],
)
def test_cors_preflight_only_on_the_cds_endpoints(client: TestClient, method: str, path: str,
                                                  cors: bool) -> None:
    """Spec "Cross-Origin Resource Sharing": CDS Services need CORS for browser clients."""
    response = client.request(method, path, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    if cors:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers  # no cookies
    else:
        assert "access-control-allow-origin" not in response.headers


def test_cors_headers_on_discovery_and_hook_responses(client: TestClient) -> None:
    discovery = client.get("/cds-services", headers={"Origin": ORIGIN})
    assert discovery.headers["access-control-allow-origin"] == "*"
    hook = client.post(f"/cds-services/{SERVICE_ID}", json=hook_request(prefetch_of([])),
                       headers={"Origin": ORIGIN, "Authorization": f"Bearer {token()}"})
    assert hook.status_code == 200
    assert hook.headers["access-control-allow-origin"] == "*"
    refused = client.post(f"/cds-services/{SERVICE_ID}", json={}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # the browser can read the refusal too
    assert refused.headers["access-control-allow-origin"] == "*"
    page = client.get("/static/app.css", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in page.headers


# --------------------------------------------------------------------------- jti across processes


def _second_app() -> TestClient:
    settings = Settings(  # type: ignore[call-arg]
        base_url=APP_URL, cookie_secure=False, today=TODAY,
        registrations=[EhrRegistration(iss=FHIR, client_id="bhi")],
        cds_clients={EHR_ISS: JWKS_URL},
    )
    return TestClient(create_app(settings), base_url=APP_URL)


def test_a_token_used_on_one_app_is_refused_by_another(client: TestClient) -> None:
    """Two apps (two engines on the one operational store, as two workers): one use in all."""
    bearer = token()
    with _second_app() as other:
        assert call(other, hook_request(prefetch_of([])), bearer).status_code == 200
        assert call(client, hook_request(prefetch_of([])), bearer).status_code == 401
        fresh = token()
        assert call(client, hook_request(prefetch_of([])), fresh).status_code == 200
        assert call(other, hook_request(prefetch_of([])), fresh).status_code == 401


def test_a_token_claimed_by_another_process_is_refused(client: TestClient) -> None:
    """Another OS process claims the jti in the same store first: this app refuses it."""
    import subprocess
    import sys

    jti = uuid.uuid4().hex
    script = (
        "import time; from bhi_fhir.store import Store; from smart_app.cds_replay import "
        f"ReplayGuard; g = ReplayGuard(Store.open()); print(g.claim({EHR_ISS!r}, {jti!r}, "
        "time.time() + 300, time.time()))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "True"
    assert call(client, hook_request(prefetch_of([])), token(jti=jti)).status_code == 401


def test_expired_claims_are_dropped() -> None:
    from bhi_fhir.store import Store
    from smart_app.cds_replay import SEEN_JTI, ReplayGuard

    store = Store.open("sqlite://")
    guard = ReplayGuard(store)
    assert guard.claim(EHR_ISS, "a", expires_at=100.0, now=50.0)
    assert not guard.claim(EHR_ISS, "a", expires_at=100.0, now=99.0)  # replay
    assert guard.claim("https://other.example", "a", expires_at=100.0, now=99.0)  # per issuer
    assert guard.claim(EHR_ISS, "b", expires_at=300.0, now=101.0)  # "a" now past: dropped
    with store.engine.connect() as conn:
        rows = {tuple(r) for r in conn.execute(SEEN_JTI.select())}
    assert rows == {(EHR_ISS, "b", 300.0)}


def test_a_suggestions_resources_refer_to_each_other_by_inferred_full_url(
    client: TestClient,
) -> None:
    """Spec "Action": the client processes a suggestion's actions as a transaction whose
    entries' full URLs are fhirServer/Type/id; so new resources carry ids (stable) and refer to
    each other as Type/id, never by the workflow's urn:uuid fullUrls."""
    screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
    (crisis,) = [c for c in cards_of(client, [screen]) if c["indicator"] == "critical"]
    again = [c for c in cards_of(client, [screen]) if c["indicator"] == "critical"]
    assert again == [crisis]  # the ids are stable across calls
    assert "urn:uuid:" not in json.dumps(crisis["suggestions"])
    focused = 0
    for suggestion in crisis["suggestions"]:
        resources = {f"{a['resource']['resourceType']}/{a['resource']['id']}": a["resource"]
                     for a in suggestion["actions"]}
        for task in (r for r in resources.values() if "focus" in r):
            assert task["focus"]["reference"] in resources  # the ServiceRequest it carries out
            focused += 1
    assert focused  # the assessment Task and its ServiceRequest
