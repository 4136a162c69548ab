"""sync --bulk's reads: the export a first run asks for, and what it files from the folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhir import FhirClient, ServerProfile, _retry
from bhi_fhir.sync.source import ServerInfo, bulk_request, fetch_bulk, fetch_contexts

BASE = "http://fhir.test/fhir"
STATUS = f"{BASE}/$export-poll-status?_jobId=j1"


def _info(context: tuple[str, ...] = ("CarePlan", "Task", "Observation"),
          screens: tuple[str, ...] = ("Observation", "DiagnosticReport")) -> ServerInfo:
    capability = {"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}
    profile = ServerProfile.from_documents(BASE, capability, None)
    return ServerInfo(profile, (), context, (), screens)


def _filters(request_filters: tuple[str, ...]) -> dict[str, list[list[tuple[str, str]]]]:
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for text in request_filters:
        kind, _, query = text.partition("?")
        out.setdefault(kind, []).append(parse_qsl(query))
    return out


def test_the_export_asks_for_what_the_first_run_searches() -> None:
    request = bulk_request(_info())
    assert request.level == "system"
    assert request.types == ("Patient", "Questionnaire", "QuestionnaireResponse", "CarePlan",
                             "Task", "Observation", "DiagnosticReport")
    filters = _filters(request.type_filters)
    assert filters["Observation"] == [[("category", "survey")],
                                      [("identifier", f"{BHI_IDENTIFIER}|")]]
    assert [k for k, _ in filters["DiagnosticReport"][0]] == ["code"]
    assert set(filters) == {"Observation", "DiagnosticReport"}  # the rest: whole types


def test_a_scoped_run_scopes_every_type_but_questionnaire() -> None:
    where = [("_tag", "urn:case|c1"), ("status", "completed")]
    filters = _filters(bulk_request(_info(), where).type_filters)
    assert filters["QuestionnaireResponse"] == [where]  # all of where: the search's own
    assert filters["Patient"] == [[("_tag", "urn:case|c1")]]  # only what every type has
    assert filters["Observation"][0] == [("category", "survey"), ("_tag", "urn:case|c1")]
    assert "Questionnaire" not in filters


def _ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


async def test_the_folder_is_filed_as_changes_and_contexts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(_retry, "sleep", no_wait)
    patient = {"resourceType": "Patient", "id": "p1"}
    qr = {"resourceType": "QuestionnaireResponse", "id": "q1", "status": "completed",
          "subject": {"reference": "Patient/p1"},
          "meta": {"lastUpdated": "2026-11-01T00:00:00Z"}}
    orphan = {"resourceType": "QuestionnaireResponse", "id": "q2", "status": "completed"}
    survey = {"resourceType": "Observation", "id": "o1", "status": "final",
              "category": [{"coding": [{"code": "survey"}]}], "code": {"text": "PHQ-9"},
              "subject": {"reference": "Patient/p1"},
              "meta": {"lastUpdated": "2026-11-02T00:00:00Z"}}
    ours = {"resourceType": "Observation", "id": "o2", "status": "final",
            "identifier": [{"system": BHI_IDENTIFIER, "value": "QuestionnaireResponse/q0#t"}],
            "subject": {"reference": "Patient/p1"}}
    plan = {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
            "subject": {"reference": "Patient/p1"}}
    files = {"f1": (patient,), "f2": (qr, orphan), "f3": (survey, ours), "f4": (plan,)}
    types = {"f1": "Patient", "f2": "QuestionnaireResponse", "f3": "Observation",
             "f4": "CarePlan"}
    router = respx.MockRouter(base_url=BASE, assert_all_called=False)
    router.get("/metadata").respond(200, json={
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "operation": [{"name": "export"}]}]})
    router.get("/$export").respond(202, headers={"Content-Location": STATUS})
    router.get(STATUS).respond(200, json={
        "transactionTime": "2026-11-30T00:00:00Z", "requiresAccessToken": True,
        "output": [{"type": types[f], "url": f"{BASE}/Binary/{f}"} for f in files]})
    router.delete(STATUS).respond(202)
    for name, content in files.items():
        router.get(f"/Binary/{name}").respond(200, content=_ndjson(*content))
    async with FhirClient(BASE, transport=httpx.MockTransport(router.async_handler)) as fhir:
        changed = await fetch_bulk(fhir, _info(), tmp_path)
        contexts = await fetch_contexts(fhir, _info(), ["Patient/p1", "Patient/p9"], changed)
        requests = len(router.calls)
        await fetch_contexts(fhir, _info(), ["Patient/p1"], changed)
        assert len(router.calls) == requests  # contexts from the files: no request
    assert changed.server_time == "2026-11-30T00:00:00Z"
    assert changed.last_updated == "2026-11-02T00:00:00Z"
    assert [r["id"] for r in changed.responses] == ["q1"]
    assert [r["id"] for r in changed.observations] == ["o1"]
    assert changed.invalid == ["QuestionnaireResponse/q2: skipped, no Patient subject"]
    assert changed.patients_changed == ["Patient/p1"]
    ctx = contexts["Patient/p1"]
    assert ctx.patient_resource == patient
    assert [r["id"] for r in ctx.responses] == ["q1"]
    assert sorted(r["id"] for r in ctx.resources) == ["cp1", "o1"]
    assert ctx.observation_ids == {"QuestionnaireResponse/q0#t"}
    assert contexts["Patient/p9"].responses == []
