"""A clinician's path in a real browser: EHR launch → patient view → an action → the write in HAPI.

The EHR is tests/smart_app/auth_server.py (discovery, authorize with PKCE, token, refresh) in
front of the real HAPI: the app's FHIR calls go through its token-checking proxy to HAPI.
Seeded data carries this run's tag; everything written for the test patient is deleted after.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bhi_fhir.instruments import score_response
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.integration.conftest import RunTag, _delete_tagged
from tests.smart_app.auth_server import (
    AuthServerState,
    Client,
    ServerThread,
    create_auth_server,
    free_port,
)

ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # 0..3
PHQ9 = ("44249-1", ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2",
                    "44252-5", "44253-3", "44260-8"])  # fmt: skip
GAD7 = ("69737-5", ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8",
                    "69736-7"])  # fmt: skip
PATIENT_NAME = "Rosa Testperson"
_PATIENT_TYPES = (
    ("Provenance", "patient"),
    ("Task", "patient"),
    ("ServiceRequest", "subject"),
    ("Encounter", "subject"),
    ("Consent", "patient"),
    ("Observation", "subject"),
    ("CarePlan", "subject"),
    ("QuestionnaireResponse", "subject"),
)


def _qr(instrument: tuple[str, list[str]], values: list[int], day: str) -> dict[str, Any]:
    code, items = instrument
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"http://loinc.org/q/{code}",
        "status": "completed",
        "subject": {"reference": "urn:uuid:patient"},
        "authored": day,
        "item": [
            {"linkId": link, "answer": [{"valueCoding": {"system": "http://loinc.org",
                                                         "code": ANSWERS[v]}}]}
            for link, v in zip(items, values, strict=True)
        ],
    }  # fmt: skip


# The practice plan's team and referral directory: HAPI checks that references resolve.
DIRECTORY = [
    *(("Practitioner", i) for i in ("pcp-lee", "bhcm-garcia", "bhcm-okafor", "psych-nguyen")),
    ("PractitionerRole", "on-duty-clinician"),
    *(
        ("Organization", i)
        for i in ("988-lifeline", "county-mobile-crisis", "riverside-csu",
                  "riverside-general-ed", "riverside-bh-inpatient")
    ),
]  # fmt: skip


def _seed(today: str) -> list[dict[str, Any]]:
    phq = [
        ([2, 2, 2, 2, 2, 2, 2, 2, 2], "2026-10-01"),  # 18
        ([2, 2, 2, 2, 2, 1, 1, 1, 1], "2026-10-22"),  # 14
        ([1, 1, 1, 1, 1, 1, 1, 1, 1], today),  # 9, item 9 = 1: crisis flag
    ]
    gad = [([2, 2, 2, 2, 2, 2, 3], "2026-10-01"), ([2, 2, 2, 1, 1, 1, 2], "2026-11-19")]
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "name": [{"given": ["Rosa"], "family": "Testperson"}],
            "gender": "female",
            "birthDate": "1984-03-02",
        },
        *(_qr(PHQ9, v, d) for v, d in phq),
        *(_qr(GAD7, v, d) for v, d in gad),
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "title": "Behavioral health integration care plan",
            # bhi-fhir's own enrollment: its identifier system
            "identifier": [{"system": "https://bhi-fhir.dev/fhir/identifier",
                            "value": f"enroll.careplan:browser-{uuid.uuid4()}"}],
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
            "subject": {"reference": "urn:uuid:patient"},
            "period": {"start": "2026-10-01"},
        },
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "priority": "routine",
            "description": "Follow-up call after medication change",
            "for": {"reference": "urn:uuid:patient"},
            "owner": {"reference": "Practitioner/bhcm-okafor", "display": "BHCM Okafor"},
            "authoredOn": "2026-11-20",
        },
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"text": "Psychotherapy (CBT)"},
            "subject": {"reference": "urn:uuid:patient"},
            "performer": [{"display": "Community Counseling Center"}],
            "authoredOn": "2026-11-05",
        },
    ]
    for values, _day in phq:  # the builder must score as intended
        assert score_response(_qr(PHQ9, values, "2026-01-01")).total == sum(values)
    return resources


@pytest.fixture
def seeded(hapi: str) -> Iterator[str]:
    """A tagged patient with 8 weeks of BHI care in HAPI; yields its id, deletes it after."""
    with seed_patient(hapi) as patient_id:
        yield patient_id


@contextmanager
def seed_patient(hapi: str) -> Iterator[str]:
    """The ``seeded`` patient (also the patient-view benchmark's): its id; deleted after."""
    tag = RunTag(uuid.uuid4().hex)
    entries = []
    for index, resource in enumerate(_seed("2026-11-26")):
        full_url = "urn:uuid:patient" if index == 0 else f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": tag.tag(resource),
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    for kind, ident in DIRECTORY:
        entries.insert(
            0,
            {
                # Shared reference data, idempotent, left in place: other tests' resources may
                # point at it, so deleting it could fail (HAPI keeps references intact).
                "resource": {"resourceType": kind, "id": ident},
                "request": {"method": "PUT", "url": f"{kind}/{ident}"},
            },
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    answer = httpx.post(hapi, content=json.dumps(bundle), headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    patient_id = answer.json()["entry"][len(DIRECTORY)]["response"]["location"].split("/")[1]
    yield patient_id
    # no-cache: HAPI answers a search the app made during the test from its cached result for
    # up to a minute, which would miss what the app wrote after it (and the patient's delete
    # would then fail on their references).
    with httpx.Client(headers={**headers, "Cache-Control": "no-cache"}, timeout=60) as http:
        for kind, param in _PATIENT_TYPES:  # what the app wrote (untagged) and what we seeded
            found = http.get(f"{hapi}/{kind}", params={param: f"Patient/{patient_id}"}).json()
            for entry in found.get("entry") or []:
                ref = f"{kind}/{entry['resource']['id']}"
                # The app's Provenance points at its writes (target), not at the patient.
                for prov in (
                    http.get(f"{hapi}/Provenance", params={"target": ref}).json().get("entry") or []
                ):
                    http.delete(f"{hapi}/Provenance/{prov['resource']['id']}")
                http.delete(f"{hapi}/{ref}")
    assert _delete_tagged(hapi, tag) == []


@pytest.fixture
def ehr(hapi: str) -> Iterator[AuthServerState]:
    state = AuthServerState(backend=hapi)
    with ServerThread(create_auth_server(state)) as server:
        state.base = server.url
        yield state


@pytest.fixture
def app_url(ehr: AuthServerState) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ehr.clients["bhi-app"] = Client("bhi-app", f"{url}/callback")
    settings = Settings(
        base_url=url,
        registrations=[EhrRegistration(iss=ehr.fhir_base, client_id="bhi-app")],
        cookie_secure=False,  # plain http on 127.0.0.1 (SameSite=Lax then)
        today="2026-11-26",
    )
    with ServerThread(create_app(settings), port=port):
        yield url


def test_ehr_launch_patient_view_and_log_time(
    page: Any,
    ehr: AuthServerState,
    app_url: str,
    seeded: str,
    hapi: str,
    screenshots: Path,
) -> None:
    launch = ehr.new_launch(patient=seeded, fhirUser="Practitioner/bhcm-okafor")
    browser_requests: list[str] = []
    page.on("request", lambda r: browser_requests.append(f"{r.method} {r.url}"))

    started = time.perf_counter()
    page.goto(f"{app_url}/launch?iss={ehr.fhir_base}&launch={launch}")
    page.wait_for_selector("#scores-chart[data-ready='1']", timeout=30_000)
    elapsed = time.perf_counter() - started
    server_requests = list(ehr.requests)
    to_view = [r.split("?", 1)[0] for r in browser_requests]
    footer = page.inner_text("footer")  # "Loaded N resources with M FHIR requests in X ms"

    assert page.url == f"{app_url}/patient/{seeded}"
    assert page.inner_text("#patient-name") == PATIENT_NAME
    assert "CRISIS" in page.inner_text(".crisis")
    assert page.inner_text("#weeks") == "8"
    assert "Follow-up call after medication change" in page.inner_text("#tasks")
    assert "Psychotherapy (CBT)" in page.content()
    page.screenshot(path=str(screenshots / "patient-view.png"), full_page=True)

    # The action: log 25 minutes of care management; the Encounter appears in HAPI.
    page.fill("#log-time input[name=minutes]", "25")
    page.select_option("#log-time select[name=mode]", "video")
    page.click("#log-time button[type=submit]")
    page.wait_for_selector(".notice")
    assert "25 minutes logged" in page.inner_text(".notice")
    assert page.inner_text("#minutes") == "25"
    page.screenshot(path=str(screenshots / "patient-view-after-log-time.png"), full_page=True)
    found = httpx.get(
        f"{hapi}/Encounter",
        params={"subject": f"Patient/{seeded}"},
        headers={"Accept": "application/fhir+json"},
    ).json()
    assert [e["resource"]["length"]["value"] for e in found.get("entry", [])] == [25]
    # Written with its Provenance, in the same transaction: the clinician and the app as agents.
    encounter_id = found["entry"][0]["resource"]["id"]
    provenance = httpx.get(
        f"{hapi}/Provenance",
        params={"target": f"Encounter/{encounter_id}"},
        headers={"Accept": "application/fhir+json"},
    ).json()
    (prov,) = [e["resource"] for e in provenance.get("entry", [])]
    agents = [a["who"] for a in prov["agent"]]
    assert agents[0] == {"reference": "Practitioner/bhcm-okafor"}
    assert agents[1]["identifier"]["value"] == "bhi-fhir-smart-app"

    # Preview the workflow plan (shows exactly what would be written and why).
    page.click("#preview-plan")
    page.wait_for_selector("h1")
    page.screenshot(path=str(screenshots / "workflow-plan-preview.png"), full_page=True)
    planned = page.locator("#plan-writes tbody tr").count()
    assert planned >= 1  # the seeded item-9 answer fires the crisis rule

    # Apply it: exactly the previewed writes land in HAPI, and the hand-off shows up.
    page.click("#apply-plan button")
    page.wait_for_selector(".notice, .refusal")
    assert page.locator(".refusal").count() == 0, page.inner_text("main")
    assert f"plan applied: {planned} writes" in page.inner_text(".notice")
    tasks = httpx.get(
        f"{hapi}/Task",
        params={
            "patient": f"Patient/{seeded}",
            "identifier": "https://bhi-fhir.dev/fhir/identifier|",
        },
        headers={"Accept": "application/fhir+json"},
    ).json()
    generated = [
        e["resource"] for e in tasks.get("entry", [])
        if any(i.get("system") == "https://bhi-fhir.dev/fhir/identifier"
               for i in e["resource"].get("identifier", []))
    ]  # fmt: skip
    assert generated, "the applied plan's Task is not in HAPI"
    assert page.locator("#tasks tr.asap").count() >= 1
    page.screenshot(path=str(screenshots / "patient-view-after-apply.png"), full_page=True)

    fhir_calls = [p for m, p in server_requests  # the batch goes to the base itself
                  if (p == "/fhir" or p.startswith("/fhir/")) and "well-known" not in p]
    metrics = {
        "what": "EHR launch (GET /launch) to rendered patient view (chart drawn), local HAPI",
        "seconds": round(elapsed, 3),
        "browser_requests": len(to_view),
        "browser_navigations_and_assets": to_view,
        "ehr_requests_total": len(server_requests),
        "ehr_requests": [f"{m} {p}" for m, p in server_requests],
        "fhir_requests_to_hapi": len(fhir_calls),
        "patient_view_server_side": footer,
    }
    out = screenshots.parent / "launch-metrics.json"
    out.write_text(json.dumps(metrics, indent=2))
    print(
        f"\nlaunch-to-patient-view: {metrics['seconds']} s, {len(to_view)} browser "
        f"requests, {len(server_requests)} requests to the EHR "
        f"({len(fhir_calls)} FHIR requests proxied to HAPI); {footer}"
    )


def test_demo_registry_and_patient_view(browser: Any, screenshots: Path, tmp_path: Path) -> None:
    """``serve --demo``: the registry and a patient of the synthetic clinic, marked DEMO."""
    port = free_port()
    settings = Settings(
        demo=True, base_url=f"http://127.0.0.1:{port}", cookie_secure=False, today="2026-11-26"
    )
    with ServerThread(create_app(settings), port=port) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.goto(f"{server.url}/demo")
        page.wait_for_selector("#registry")
        assert "DEMO" in page.inner_text(".demo-banner")
        rows = page.locator("#registry tbody tr").count()
        assert rows > 0
        page.screenshot(path=str(screenshots / "registry-demo.png"), full_page=True)
        page.select_option("select[name=flag]", "not improving")
        page.click(".filters button")
        page.wait_for_selector("#registry")
        flagged = page.locator("#registry tbody tr").count()
        assert flagged <= rows
        page.click("#registry tbody tr a")
        page.wait_for_selector("#scores-chart[data-ready='1']")
        page.screenshot(path=str(screenshots / "patient-view-demo.png"), full_page=True)
        context.close()
