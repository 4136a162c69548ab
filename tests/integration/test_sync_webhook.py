"""Event-driven sync end to end on the real HAPI: subscribe → a PHQ-9 arrives → crisis referral.

The app (what ``bhi-fhir serve`` runs) is started on a free 127.0.0.1 port
(``notify_receiver``); ``bhi-fhir subscribe`` registers the rest-hook Subscription for this
case's responses (twice: the second is a no-op); a positive PHQ-9 with item 9 > 0 is created
in HAPI; HAPI notifies the app, which queues the sync for that patient; the crisis
ServiceRequest appears and ``/fhir-notify/status`` counts the completed run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.paths import examples_dir
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.notify_receiver import case_criteria, running_receiver, unsubscribe
from tests.integration.test_sync import (
    SEEDED_TYPES,
    WRITTEN_TYPES,
    _delete_case,  # noqa: F401  (autouse fixture: deletes this case's resources)
)
from tests.sync.clinic import seed, team

SECRET = "test-notify-secret"
_BIN = Path(sys.executable).parent


@pytest.fixture
def app_url(fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path) -> Iterator[str]:
    with running_receiver({
        "BHI_NOTIFY_SERVER": fhir_base_url,
        "BHI_NOTIFY_SECRET": SECRET,
        "BHI_NOTIFY_TAGS": f"{TAG_SYSTEM}|{run_tag.code},{CASE_SYSTEM}|{case_id}",
        "BHI_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
    }) as url:
        yield url


def _subscribe(base: str, endpoint: str, run_tag: RunTag, case_id: str) -> str:
    result = subprocess.run(
        [str(_BIN / "bhi-fhir"), "subscribe", "--server", base, "--endpoint", endpoint,
         "--secret", SECRET, "--tag", f"{TAG_SYSTEM}|{run_tag.code}",
         "--tag", f"{CASE_SYSTEM}|{case_id}", *case_criteria(CASE_SYSTEM, case_id),
         "--timeout", "90"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_notification_rejects_bad_payloads(app_url: str) -> None:
    notify = f"{app_url}/fhir-notify"
    headers = {"X-BHI-Notify-Secret": SECRET, "Content-Type": "application/fhir+json"}
    bad = httpx.put(f"{notify}/QuestionnaireResponse/x", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    no_subject = httpx.put(f"{notify}/QuestionnaireResponse/x", headers=headers,
                           json={"resourceType": "QuestionnaireResponse", "id": "x"})
    assert no_subject.status_code == 400
    wrong_secret = httpx.post(notify, headers={"X-BHI-Notify-Secret": "nope"})
    assert wrong_secret.status_code == 401


def test_subscription_notification_runs_the_crisis_protocol(
    fhir_base_url: str, run_tag: RunTag, case_id: str, app_url: str
) -> None:
    seed(fhir_base_url, team())  # the referral directory's stubs (the EHR has them)
    for kind in (*SEEDED_TYPES, *WRITTEN_TYPES, "Subscription"):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    patient = f"Patient/c{case_id[:8]}-notify"
    qr = json.loads((examples_dir() / "screening" / "phq9-moderate-item9.json").read_text())
    qr["id"] = f"c{case_id[:8]}-qr-notify"
    qr["subject"] = {"reference": patient}
    qr["authored"] = "2026-11-26"
    tags = [{"system": TAG_SYSTEM, "code": run_tag.code}, {"system": CASE_SYSTEM, "code": case_id}]
    qr["meta"] = {"tag": tags}
    endpoint = f"{app_url}/fhir-notify"
    first = _subscribe(fhir_base_url, endpoint, run_tag, case_id)
    again = _subscribe(fhir_base_url, endpoint, run_tag, case_id)
    sub_id = first.split()[0]
    assert first.endswith("created") and again == f"{sub_id} already registered"
    try:
        with httpx.Client(base_url=fhir_base_url, timeout=60,
                          headers={"Cache-Control": "no-cache"}) as http:
            for _ in range(40):  # requested → active takes about a second
                if http.get(sub_id).json().get("status") == "active":
                    break
                time.sleep(0.5)
            http.put(patient, json={"resourceType": "Patient", "id": patient.split("/")[1],
                                    "gender": "female", "birthDate": "1980-01-01",
                                    "meta": {"tag": tags}}).raise_for_status()
            http.put(f"QuestionnaireResponse/{qr['id']}", json=qr).raise_for_status()
            # HAPI delivers within seconds; a loaded CI machine can take far longer
            deadline = time.monotonic() + 240
            found: list[dict[str, object]] = []
            while time.monotonic() < deadline and not found:
                page = http.get("ServiceRequest", params={
                    "subject": patient, "identifier": f"{BHI_IDENTIFIER}|"}).json()
                found = [e["resource"] for e in page.get("entry", [])]
                if not found:
                    time.sleep(1)
            assert found, "no ServiceRequest within 240 s of the notification"
            assert any(
                "crisis" in i["value"] for r in found for i in r.get("identifier", [])  # type: ignore[attr-defined]
            ), found
            # the receiver's queue counts the run (counts only: no patient ids)
            status = httpx.get(f"{endpoint}/status", timeout=10)
            assert status.status_code == 200 and patient.split("/")[1] not in status.text
            assert status.json()["completed"] >= 1
    finally:
        unsubscribe(fhir_base_url, sub_id)
