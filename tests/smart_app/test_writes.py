"""The app's own writes: each goes in one transaction with its Provenance (agents: the signed-in
fhirUser and the app as an identifier-only Device; idempotent by meta.tag + ifNoneExist _tag),
and consent / time logging are idempotent (a double submit writes once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.codes import BHI_IDENTIFIER
from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, ehr_launch
from tests.smart_app.test_security import _clinic

DEVICE = {"system": BHI_IDENTIFIER, "value": "bhi-fhir-smart-app"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        demo=True, demo_clinic=_clinic(tmp_path), cookie_secure=False, base_url=APP_URL,
        today="2026-11-26",
    )  # fmt: skip
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        client.get("/demo", follow_redirects=False)
        yield client


def _store(client: TestClient) -> dict[tuple[str, str], Any]:
    return client.app.state.demo_source._by_key  # type: ignore[attr-defined,no-any-return]


def _of(client: TestClient, kind: str) -> list[dict[str, Any]]:
    return [r for (k, _), r in _store(client).items() if k == kind]


def _form(client: TestClient, patient: str = "evil") -> dict[str, str]:
    page = client.get(f"/patient/{patient}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    entry = re.search(r'name="entry_id" value="([^"]+)"', page)
    assert csrf and entry
    return {"csrf_token": csrf[1], "entry_id": entry[1]}


def _provenance_for(client: TestClient, ref: str) -> list[dict[str, Any]]:
    return [p for p in _of(client, "Provenance") if any(t["reference"] == ref for t in p["target"])]


def test_double_submitted_time_is_logged_once_with_its_provenance(demo: TestClient) -> None:
    form = _form(demo) | {"minutes": "25", "mode": "phone"}
    first = demo.post("/patient/evil/time", data=form, follow_redirects=False)
    second = demo.post("/patient/evil/time", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert "already" in second.headers["location"]
    logged = [e for e in _of(demo, "Encounter") if e["subject"]["reference"] == "Patient/evil"]
    assert len(logged) == 1
    provenance = _provenance_for(demo, f"Encounter/{logged[0]['id']}")
    assert len(provenance) == 1  # the urn:uuid target resolved in the same transaction
    agents = [a["who"] for a in provenance[0]["agent"]]
    assert {"type": "Device", "identifier": DEVICE, "display": "bhi-fhir SMART app"} in agents
    assert 'id="minutes">25<' in demo.get("/patient/evil").text
    # A new form (a new page) logs again.
    demo.post("/patient/evil/time", data=_form(demo) | {"minutes": "5", "mode": "phone"})
    assert (
        len([e for e in _of(demo, "Encounter") if e["subject"]["reference"] == "Patient/evil"]) == 2
    )


def test_time_form_without_its_id_is_refused(demo: TestClient) -> None:
    form = _form(demo) | {"minutes": "25", "mode": "phone", "entry_id": "../x"}
    response = demo.post("/patient/evil/time", data=form)
    assert response.status_code == 400 and "reload the page" in response.text


def test_consent_is_recorded_once(demo: TestClient) -> None:
    form = _form(demo) | {"confirm": "yes"}
    demo.post("/patient/evil/consent", data=form, follow_redirects=False)
    again = demo.post("/patient/evil/consent", data=form, follow_redirects=False)
    assert "already" in again.headers["location"]
    consents = [c for c in _of(demo, "Consent") if c["patient"]["reference"] == "Patient/evil"]
    assert len(consents) == 1
    assert consents[0]["identifier"][0]["system"] == BHI_IDENTIFIER
    assert len(_provenance_for(demo, f"Consent/{consents[0]['id']}")) == 1


def test_task_update_has_an_update_provenance(demo: TestClient) -> None:
    form = _form(demo) | {"action": "complete"}
    assert demo.post("/patient/evil/task/task-evil", data=form).status_code == 200
    (prov,) = _provenance_for(demo, "Task/task-evil")
    assert prov["activity"]["coding"][0]["code"] == "UPDATE"
    assert prov["entity"][0]["what"]["reference"] == "Task/task-evil/_history/1"
    # Completing again is a new update of version 2: its own Provenance, keyed by that version.
    assert demo.post("/patient/evil/task/task-evil", data=form).status_code == 200
    tags = sorted(p["meta"]["tag"][0]["code"] for p in _provenance_for(demo, "Task/task-evil"))
    assert tags == ["provenance:task:task-evil:update:1", "provenance:task:task-evil:update:2"]


def _posted(ehr: AuthServerState) -> list[dict[str, Any]]:
    assert len(ehr.transactions) == 1, "one transaction per action"
    return list(ehr.transactions[0]["entry"])


def test_ehr_writes_carry_the_signed_in_user_and_the_app(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)  # fhirUser Practitioner/cm1, from the verified id_token
    page = app_client.get("/patient/p1").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    entry = re.search(r'name="entry_id" value="([^"]+)"', page)
    assert csrf and entry
    form = {"csrf_token": csrf[1], "entry_id": entry[1], "minutes": "20", "mode": "video"}
    assert app_client.post("/patient/p1/time", data=form, follow_redirects=False).status_code == 303
    encounter, provenance = _posted(ehr)
    identifier = f"time-entry:p1:{entry[1]}"
    assert encounter["request"] == {
        "method": "POST",
        "url": "Encounter",
        "ifNoneExist": "identifier=" + quote(f"{BHI_IDENTIFIER}|{identifier}", safe="/:"),
    }
    assert encounter["resource"]["participant"][0]["individual"]["reference"] == "Practitioner/cm1"
    prov = provenance["resource"]
    tag = quote(f"{BHI_IDENTIFIER}|provenance:{identifier}", safe="/:")
    assert provenance["request"]["ifNoneExist"] == f"_tag={tag}"
    assert prov["meta"]["tag"] == [{"system": BHI_IDENTIFIER, "code": f"provenance:{identifier}"}]
    assert prov["target"] == [{"reference": encounter["fullUrl"]}]
    author, device = prov["agent"]
    assert author["who"] == {"reference": "Practitioner/cm1"}
    assert author["type"]["coding"][0]["code"] == "author"
    assert device["who"]["identifier"] == DEVICE and device["who"]["type"] == "Device"
    assert device["onBehalfOf"] == {"reference": "Practitioner/cm1"}
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(ehr.transactions[0])  # valid R4 (R4B models)


def test_ehr_consent_is_conditional_with_provenance(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', app_client.get("/patient/p1").text)
    assert csrf
    app_client.post("/patient/p1/consent", data={"csrf_token": csrf[1], "confirm": "yes"})
    consent, provenance = _posted(ehr)
    value = "consent:treatment:p1:2026-11-26"
    assert consent["resource"]["identifier"] == [{"system": BHI_IDENTIFIER, "value": value}]
    query = quote(f"{BHI_IDENTIFIER}|{value}", safe="/:")
    assert consent["request"]["ifNoneExist"] == f"identifier={query}"
    assert provenance["resource"]["target"] == [{"reference": consent["fullUrl"]}]
    assert provenance["resource"]["agent"][0]["who"] == {"reference": "Practitioner/cm1"}
