"""A CDS Hooks card's SMART app link, followed in a real browser, launches bhi-fhir at the patient.

The EHR (tests/smart_app/auth_server.py in front of the real HAPI) calls the patient-view hook
with a JWT signed by its own key (published at its /jwks, the app's allow-listed CDS client)
and the prefetch it filled from HAPI; it shows the card and, as the spec has a CDS client do
for a ``smart`` link, adds ``iss`` and ``launch`` (patient in context) to the link's URL. The
clinician clicks it: the app's EHR launch runs and the patient view of that patient appears.
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from smart_app.cds import PREFETCH, SERVICE_ID
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.browser import test_ehr_launch
from tests.browser.test_ehr_launch import PATIENT_NAME
from tests.smart_app.auth_server import (
    AuthServerState,
    Client,
    ServerThread,
    free_port,
    signing_key,
)

ehr, seeded = test_ehr_launch.ehr, test_ehr_launch.seeded  # the EHR and its seeded patient


@pytest.fixture
def cds_app(ehr: AuthServerState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app, with the EHR as a SMART registration and as its CDS client (iss → JWKS)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the jti store
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ehr.clients["bhi-app"] = Client("bhi-app", f"{url}/callback")
    settings = Settings(
        base_url=url,
        registrations=[EhrRegistration(iss=ehr.fhir_base, client_id="bhi-app")],
        cds_clients={ehr.base: f"{ehr.base}/jwks"},
        cookie_secure=False,
        today="2026-11-26",
    )
    with ServerThread(create_app(settings), port=port):
        yield url


def _ehr_jwt(ehr: AuthServerState, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": ehr.base, "sub": "ehr-cds-client", "aud": audience, "iat": now,
              "exp": now + 300, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, signing_key(), algorithm="RS256",
                      headers={"kid": ehr.jwks_kid})


def _card_page(card: dict[str, Any], href: str) -> str:
    """How the EHR shows the card: summary, evidence, source and the app link."""
    link = card["links"][0]
    return (
        "<html><body style='font-family:sans-serif;margin:2em'><h2>EHR: CDS Hooks cards</h2>"
        f"<div id='card' style='border-left:6px solid #b00;padding:1em;background:#fee'>"
        f"<b>{html.escape(card['indicator'].upper())}</b> {html.escape(card['summary'])}"
        f"<p>{html.escape(card['detail'].splitlines()[0])}</p>"
        f"<p><small>Source: {html.escape(card['source']['label'])}</small></p>"
        f"<a id='app-link' href='{html.escape(href)}'>{html.escape(link['label'])}</a>"
        "</div></body></html>"
    )


def test_card_app_link_launches_bhi_fhir_at_the_patient(
    page: Any, ehr: AuthServerState, cds_app: str, seeded: str, hapi: str, screenshots: Path
) -> None:
    service = f"{cds_app}/cds-services/{SERVICE_ID}"
    with httpx.Client(timeout=60, headers={"Cache-Control": "no-cache"}) as http:
        prefetch = {key: http.get(f"{hapi}/{t.replace('{{context.patientId}}', seeded)}").json()
                    for key, t in PREFETCH.items()}
        answer = http.post(service, json={
            "hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "fhirServer": ehr.fhir_base,
            "context": {"userId": "Practitioner/bhcm-okafor", "patientId": seeded},
            "prefetch": prefetch,
        }, headers={"Authorization": f"Bearer {_ehr_jwt(ehr, service)}"})
    assert answer.status_code == 200, answer.text
    (card,) = [c for c in answer.json()["cards"] if c["indicator"] == "critical"]
    (link,) = card["links"]
    assert link["type"] == "smart" and link["url"] == f"{cds_app}/launch"

    # The CDS client launches a smart link as a SMART app: iss and a launch with the patient.
    launch = ehr.new_launch(patient=seeded, fhirUser="Practitioner/bhcm-okafor")
    href = f"{link['url']}?{urlencode({'iss': ehr.fhir_base, 'launch': launch})}"
    page.set_content(_card_page(card, href))
    page.screenshot(path=str(screenshots / "cds-card.png"), full_page=True)
    page.click("#app-link")
    page.wait_for_selector("#scores-chart[data-ready='1']", timeout=30_000)
    assert page.url == f"{cds_app}/patient/{seeded}"
    assert page.inner_text("#patient-name") == PATIENT_NAME
    assert "CRISIS" in page.inner_text(".crisis")
    page.screenshot(path=str(screenshots / "cds-card-app-link-patient-view.png"), full_page=True)
