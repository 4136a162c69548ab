"""XSS through clinical data, CSRF on every state-changing route, no token or PHI in logs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.paths import examples_dir
from smart_app import launch, views
from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, ehr_launch, write_clinic

XSS_NAME = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def _clinic(tmp_path: Path) -> Path:
    resources = []
    for path in sorted((examples_dir() / "clinic").glob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    patient = {
        "resourceType": "Patient",
        "id": "evil",
        "name": [{"text": XSS_NAME}],
        "gender": "female",
        "birthDate": "1990-01-01",
    }
    careplan = {
        "resourceType": "CarePlan",
        "id": "cp-evil",
        "identifier": [{"system": "https://bhi-fhir.dev/fhir/identifier", "value": "enroll:x"}],
        "status": "active",
        "intent": "plan",
        "title": XSS_NAME,
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
        "subject": {"reference": "Patient/evil"},
        "period": {"start": "2026-10-01"},
    }
    task = {
        "resourceType": "Task",
        "id": "task-evil",
        "status": "requested",
        "intent": "order",
        "description": XSS_NAME,
        "for": {"reference": "Patient/evil"},
        "owner": {"reference": "Practitioner/x", "display": XSS_NAME},
    }
    return write_clinic(tmp_path, [*resources, patient, careplan, task])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        demo=True,
        demo_clinic=_clinic(tmp_path),
        cookie_secure=False,
        base_url=APP_URL,
        today="2026-11-26",
    )
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        assert client.get("/demo", follow_redirects=False).status_code == 303
        yield client


def _csrf(client: TestClient, patient: str = "evil") -> str:
    page = client.get(f"/patient/{patient}")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _store_size(client: TestClient) -> int:
    app = client.app
    return len(app.state.demo_source._by_key)  # type: ignore[attr-defined]


def test_patient_name_is_escaped_everywhere(demo: TestClient) -> None:
    for url in ("/patient/evil", "/registry"):
        page = demo.get(url)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_chart_data_cannot_break_out_of_its_script_element(demo: TestClient) -> None:
    page = demo.get("/patient/evil").text
    block = page.split('<script id="chart-data" type="application/json">', 1)[1]
    assert "</script>" in block and "<" not in block.split("</script>", 1)[0]


ROUTES = [
    ("/patient/evil/plan/apply", {"digest": "x"}),
    ("/patient/evil/time", {"minutes": "20", "mode": "phone"}),
    ("/patient/evil/task/task-evil", {"action": "complete"}),
    ("/patient/evil/consent", {"confirm": "yes"}),
    ("/logout", {}),
]


@pytest.mark.parametrize(("route", "form"), ROUTES, ids=[r for r, _ in ROUTES])
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_state_changing_routes_need_the_csrf_token(
    demo: TestClient, route: str, form: dict[str, str], token: str | None
) -> None:
    before = _store_size(demo)
    data = dict(form) if token is None else {**form, "csrf_token": token}
    response = demo.post(route, data=data, follow_redirects=False)
    assert response.status_code == 403 and "security token" in response.text
    assert _store_size(demo) == before  # nothing written
    assert demo.get("/patient/evil").status_code == 200  # still signed in


def test_every_post_route_is_covered_by_the_csrf_test() -> None:
    posts = {
        getattr(route, "path", "")
        for router in (launch.router, views.router)
        for route in router.routes
        if "POST" in (getattr(route, "methods", None) or set())
    }
    covered = {
        "/patient/{patient_id}/plan/apply",
        "/patient/{patient_id}/time",
        "/patient/{patient_id}/task/{task_id}",
        "/patient/{patient_id}/consent",
        "/logout",
    }
    assert posts == covered


def test_with_the_token_the_actions_write(demo: TestClient) -> None:
    token = _csrf(demo)
    entry_id = re.search(r'name="entry_id" value="([0-9a-f]+)"', demo.get("/patient/evil").text)
    assert entry_id
    before = _store_size(demo)
    response = demo.post(
        "/patient/evil/time",
        data={"csrf_token": token, "minutes": "25", "mode": "video", "entry_id": entry_id[1]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert _store_size(demo) == before + 2  # the Encounter and its Provenance
    page = demo.get("/patient/evil")
    assert 'id="minutes">25<' in page.text
    done = demo.post(
        "/patient/evil/task/task-evil",
        data={"csrf_token": token, "action": "complete"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "task-evil" not in demo.get("/patient/evil").text  # no longer open
    consent = demo.post(
        "/patient/evil/consent",
        data={"csrf_token": token, "confirm": "yes"},
        follow_redirects=False,
    )
    assert consent.status_code == 303
    assert "Consent: on file" in demo.get("/patient/evil").text


def test_task_of_another_patient_cannot_be_changed(demo: TestClient) -> None:
    token = _csrf(demo)
    response = demo.post(
        "/patient/p00015/task/task-evil", data={"csrf_token": token, "action": "complete"}
    )
    assert response.status_code == 403


def test_preview_then_apply_writes_exactly_the_preview(demo: TestClient) -> None:
    registry = demo.get("/registry").text
    patients = re.findall(r'href="/patient/(p\d+)"', registry)
    for patient in patients:
        preview = demo.get(f"/patient/{patient}/plan")
        assert preview.status_code == 200
        match = re.search(r'name="digest" value="([0-9a-f]+)"', preview.text)
        if match is None:
            continue
        writes = len(re.findall(r"<tr><td>", preview.text.split('id="plan-writes"')[1]))
        before = _store_size(demo)
        token = _csrf(demo, patient)
        applied = demo.post(
            f"/patient/{patient}/plan/apply",
            data={"csrf_token": token, "digest": match.group(1)},
            follow_redirects=False,
        )
        assert applied.status_code == 303
        creates = preview.text.count("<td>create</td>")
        # Each write, and a Provenance for each write, in the same transaction.
        assert _store_size(demo) == before + creates + writes and writes >= creates
        # Applying again is a no-op: the protocol sees its own writes.
        again = demo.get(f"/patient/{patient}/plan")
        assert 'id="plan-empty"' in again.text or "<td>create</td>" not in again.text
        return
    pytest.fail("no patient in the demo clinic had a plan to apply")


def test_stale_preview_is_not_applied(demo: TestClient) -> None:
    token = _csrf(demo, "p00015")
    before = _store_size(demo)
    response = demo.post(
        "/patient/p00015/plan/apply",
        data={"csrf_token": token, "digest": "0" * 64},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].endswith("/plan")
    assert _store_size(demo) == before


def test_no_token_or_phi_in_logs(
    app_client: TestClient, ehr: AuthServerState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ehr.expires_in = 30  # also exercise refresh
    callback = ehr_launch(app_client, ehr)
    app_client.get("/patient/p1")
    assert callback.status_code == 303
    secrets = [
        *ehr.access_tokens,
        *ehr.refresh_tokens,
        *(p["state"] for p in ehr.authorize_params),
        *(p["code_challenge"] for p in ehr.authorize_params),
        *(c["form"].get("code", "") for c in ehr.token_requests if c["form"].get("code")),
        *(c["form"]["code_verifier"] for c in ehr.token_requests if "code_verifier" in c["form"]),
        "Ada Example",
        "Patient/p1",
        "1980-01-01",
        app_client.cookies.get("bhi_session") or "missing",
    ]
    assert caplog.records, "expected some log records"
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text
