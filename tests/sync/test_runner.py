"""The sync runner against a fake server (httpx.MockTransport): what a real one can't do on cue.

The fake answers /metadata, the changed-response search, the context batch and transactions;
``transaction_statuses`` scripts failures (503, 412, 400) for the next transactions.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bhi_fhir.fhir import _retry
from bhi_fhir.paths import examples_dir
from bhi_fhir.store import Store
from bhi_fhir.sync import SyncConfig, run_sync
from bhi_fhir.sync.pipeline import write_chunks
from bhi_fhir.sync.planning import PatientPlan, SyncWrite
from tests.fhir.capability import capability_statement
from tests.instruments.screen_records import derived_observations, phq9_response, synthea_screen

BASE = "http://fhir.test/fhir"
TODAY = date(2026, 11, 26)


def _qr(patient: str, qr_id: str) -> dict[str, Any]:
    qr = json.loads((examples_dir() / "screening" / "phq9-moderate-item9.json").read_text())
    qr["id"] = qr_id
    qr["subject"] = {"reference": patient}
    qr["meta"] = {"versionId": "1", "lastUpdated": "2026-11-26T10:00:00Z"}
    return qr


class FakeServer:
    def __init__(self, patients: int = 3) -> None:
        self.responses = [_qr(f"Patient/p{i}", f"qr{i}") for i in range(patients)]
        self.transaction_statuses: list[int] = []
        self.transactions: list[dict[str, Any]] = []
        self.queries: list[httpx.URL] = []
        self.observations: list[dict[str, Any]] = []  # changed screening Observations

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir").strip("/")
        if path == "metadata":
            types = ("Patient", "QuestionnaireResponse", "Task", "ServiceRequest", "CarePlan",
                     "Encounter", "Observation", "Provenance", "Consent", "Procedure")
            return httpx.Response(200, json=capability_statement(types=types))
        if path == "Observation":  # the changed-screening-Observation search
            self.queries.append(request.url)
            return httpx.Response(200, json={
                "resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": o, "search": {"mode": "match"}}
                          for o in self.observations]})
        if path == "QuestionnaireResponse":
            self.queries.append(request.url)
            subject = request.url.params.get("subject")
            entries = [
                {"resource": qr, "search": {"mode": "match"}} for qr in self.responses
                if subject is None or qr["subject"]["reference"] == subject
            ]
            return httpx.Response(200, json={
                "resourceType": "Bundle", "type": "searchset",
                "meta": {"lastUpdated": "2026-11-26T12:00:00Z"}, "entry": entries,
            })
        if path == "" and request.method == "POST":
            bundle = json.loads(request.content)
            if bundle["type"] == "batch":
                return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                    {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": []},
                     "response": {"status": "200 OK"}} for _ in bundle["entry"]
                ]})
            status = self.transaction_statuses.pop(0) if self.transaction_statuses else 200
            if status != 200:
                return httpx.Response(status, json={"resourceType": "OperationOutcome",
                                                    "issue": [{"severity": "error",
                                                               "code": "processing",
                                                               "diagnostics": "scripted"}]})
            self.transactions.append(bundle)
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                {"response": {"status": "201 Created",
                              "location": f"{e['resource']['resourceType']}/{i}/_history/1"}}
                for i, e in enumerate(bundle["entry"])
            ]})
        return httpx.Response(404)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr(_retry, "sleep", no_sleep)
    yield


def _config(server: FakeServer, tmp_path: Path, **kw: Any) -> SyncConfig:
    return SyncConfig(server=BASE, today=TODAY, state_url=f"sqlite:///{tmp_path / 's.db'}",
                      transport=httpx.MockTransport(server), **kw)


async def test_sync_writes_one_transaction_per_chunk_and_moves_the_watermark(
    tmp_path: Path,
) -> None:
    server = FakeServer(3)
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    # metadata + 2 searches (responses, screening Observations) + 1 batch read + transactions
    assert report.requests == 4 + len(server.transactions)
    entries = [e for t in server.transactions for e in t["entry"]]
    assert all(len(t["entry"]) <= 100 for t in server.transactions)
    kinds = {e["resource"]["resourceType"] for e in entries}
    assert {"Task", "Observation", "Provenance"} <= kinds
    creates = [e for e in entries if e["request"]["method"] == "POST"]
    assert all("ifNoneExist" in e["request"] for e in creates)
    assert report.written["created"] + report.provenance["created"] == len(entries)
    assert report.watermark is not None
    assert Store.open(f"sqlite:///{tmp_path / 's.db'}").watermark(BASE) == report.watermark


async def test_a_503_transaction_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    server = FakeServer(2)
    server.transaction_statuses = [503, 503]
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok" and not report.problems
    assert report.requests == 4 + len(server.transactions) + 2


async def test_a_version_clash_re_reads_and_re_plans(tmp_path: Path) -> None:
    server = FakeServer(2)
    server.transaction_statuses = [412]
    report = await run_sync(_config(server, tmp_path, group_size=2))
    assert report.status == "ok", report.to_text()
    patients = {e["resource"].get("subject", {}).get("reference")
                for t in server.transactions for e in t["entry"]} - {None}
    assert patients == {"Patient/p0", "Patient/p1"}


async def test_a_refused_patient_is_isolated_and_the_watermark_holds(tmp_path: Path) -> None:
    server = FakeServer(2)
    server.transaction_statuses = [400, 200, 400]  # the pair, then p0 ok, then p1 refused
    report = await run_sync(_config(server, tmp_path, group_size=2))
    assert report.status == "partial"
    assert [p.subject for p in report.errors] == ["Patient/p1"]
    assert not report.errors[0].retry


async def test_exhausted_retries_hold_the_watermark_for_the_next_run(tmp_path: Path) -> None:
    server = FakeServer(1)
    server.transaction_statuses = [503] * 3
    report = await run_sync(_config(server, tmp_path, max_retries=2))
    assert report.status == "partial" and report.errors[0].retry
    # held at the failed response: the next run's _lastUpdated=ge… search sees it again
    assert report.watermark == server.responses[0]["meta"]["lastUpdated"]


async def test_patient_scope_reads_that_patient_and_leaves_the_watermark(tmp_path: Path) -> None:
    server = FakeServer(3)
    report = await run_sync(_config(server, tmp_path, patient="Patient/p1"))
    assert report.status == "ok" and report.patients == 1
    assert server.queries[0].params.get("subject") == "Patient/p1"
    assert "_lastUpdated" not in server.queries[0].params
    assert Store.open(f"sqlite:///{tmp_path / 's.db'}").watermark(BASE) is None


async def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    server = FakeServer(2)
    report = await run_sync(_config(server, tmp_path, dry_run=True))
    assert report.status == "ok" and not server.transactions
    assert {d.patient for d in report.diffs} == {"Patient/p0", "Patient/p1"}


def _plan(patient: str, writes: int) -> PatientPlan:
    write = SyncWrite("r", "i", "create", {"resourceType": "Task"}, "urn:uuid:x", "why")
    return PatientPlan(patient, writes=[copy.copy(write) for _ in range(writes)])


def test_write_chunks_keep_patients_whole_and_under_the_limit() -> None:
    plans = [_plan("a", 40), _plan("b", 40), _plan("c", 40), _plan("d", 150), _plan("e", 1)]
    chunks = write_chunks(plans, 100)
    assert [[p.patient for p in c] for c in chunks] == [["a", "b"], ["c"], ["d"], ["e"]]
    assert write_chunks([], 100) == []


async def test_conditional_creates_are_keyed_by_identifier_and_patient(tmp_path: Path) -> None:
    server = FakeServer(2)
    await run_sync(_config(server, tmp_path))
    creates = [e for t in server.transactions for e in t["entry"]
               if e["request"]["method"] == "POST"
               and e["resource"]["resourceType"] != "Provenance"]
    assert creates
    for entry in creates:
        resource = entry["resource"]
        patient = (resource.get("subject") or resource.get("for"))["reference"]
        assert entry["request"]["ifNoneExist"].endswith(f"&patient={patient}")


async def test_a_changed_screening_observation_is_a_change(tmp_path: Path) -> None:
    """A screen stored only as Observations (Synthea 3.3's total; PHQ-9 15 is
    positive, Kroenke 2001) brings its patient in; bhi-fhir's own Observations (US Core screening)
    do not."""
    server = FakeServer(0)
    _, total = synthea_screen("p9", "2026-11-20T10:00:00Z")
    total["meta"] = {"versionId": "1", "lastUpdated": "2026-11-21T08:00:00Z"}
    own = derived_observations(phq9_response("p8", "2026-11-20T10:00:00Z"))
    for obs in own:
        obs["meta"] = {"versionId": "1", "lastUpdated": "2026-11-22T08:00:00Z"}
    server.observations = [total, *own]
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    assert report.patients == 1  # p9 only: p8's Observations are ours
    entries = [e for t in server.transactions for e in t["entry"]]
    rules = {e["resource"]["resourceType"] for e in entries}
    assert "Observation" not in rules  # a screen read from Observations already is one
    assert any("suicide item not recorded" in json.dumps(e) for e in entries)
    query = next(q for q in server.queries if q.path.endswith("/Observation"))
    assert query.params["category"] == "survey"
    assert report.watermark is not None and report.watermark <= "2026-11-21T08:00:00Z"


async def test_a_tag_scoped_run_scopes_the_observation_search_too(tmp_path: Path) -> None:
    server = FakeServer(1)
    where = [("_tag", "urn:case|c1"), ("questionnaire", "http://example.org/Q")]
    report = await run_sync(_config(server, tmp_path, where=where))
    assert report.status == "ok", report.to_text()
    query = next(q for q in server.queries if q.path.endswith("/Observation"))
    assert query.params["_tag"] == "urn:case|c1"  # every resource has _tag
    assert "questionnaire" not in query.params  # a QuestionnaireResponse parameter


async def test_a_failed_screening_observation_holds_the_watermark(tmp_path: Path) -> None:
    """Fail-closed as for a response: the next run's search sees the Observation again."""
    server = FakeServer(0)
    _, total = synthea_screen("p9", "2026-11-20T10:00:00Z")
    total["meta"] = {"versionId": "1", "lastUpdated": "2026-11-21T08:00:00Z"}
    server.observations = [total]
    server.transaction_statuses = [503] * 3
    report = await run_sync(_config(server, tmp_path, max_retries=2))
    assert report.status == "partial" and report.errors[0].retry
    assert report.watermark == "2026-11-21T08:00:00Z"


def _patients_of(transaction: dict[str, Any]) -> set[str]:
    return {(e["resource"].get("subject") or e["resource"].get("for") or {}).get("reference")
            for e in transaction["entry"]} - {None}


async def test_transactions_are_packed_across_groups_with_whole_patients(
    tmp_path: Path,
) -> None:
    # Each patient plans 16 writes: cut per group of 3, every group would end in a
    # transaction of one patient (7 for 10 patients); packed across groups, 5 of 2 patients.
    server = FakeServer(10)
    report = await run_sync(_config(server, tmp_path, group_size=3, max_entries=40))
    assert report.status == "ok", report.to_text()
    sizes = [len(t["entry"]) for t in server.transactions]
    assert sizes == [32] * 5, sizes
    seen = [p for t in server.transactions for p in _patients_of(t)]
    assert sorted(seen) == sorted(f"Patient/p{i}" for i in range(10))  # each in one only
    assert report.written["created"] + report.provenance["created"] == sum(sizes)


async def test_group_size_still_bounds_the_patients_of_a_transaction(tmp_path: Path) -> None:
    server = FakeServer(4)
    report = await run_sync(_config(server, tmp_path, group_size=1))
    assert report.status == "ok", report.to_text()
    assert [len(_patients_of(t)) for t in server.transactions] == [1, 1, 1, 1]


async def test_the_capability_statement_is_read_while_the_search_runs(tmp_path: Path) -> None:
    # /metadata answers only once the response search has arrived: a sync reading it first
    # would wait in vain (the fake then fails it).
    server = FakeServer(2)
    searched = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            try:
                await asyncio.wait_for(searched.wait(), 5)
            except TimeoutError:
                return httpx.Response(500)
        elif request.url.path.endswith("/QuestionnaireResponse"):
            searched.set()
        return server(request)

    config = _config(server, tmp_path)
    config.transport = httpx.MockTransport(handler)
    report = await run_sync(config)
    assert report.status == "ok", report.to_text()
    assert report.requests == 4 + len(server.transactions)  # nothing read twice


async def test_a_server_refusing_the_assumed_search_is_searched_as_it_declares(
    tmp_path: Path,
) -> None:
    server = FakeServer(2)

    def strict(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/QuestionnaireResponse") and "_include" in request.url.params:
            return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-supported", "diagnostics": "_include"}]})
        return server(request)

    config = _config(server, tmp_path)
    config.transport = httpx.MockTransport(strict)
    report = await run_sync(config)
    assert report.status == "ok", report.to_text()
    assert "_include" not in server.queries[-1].params  # its statement declares none
    assert {p for t in server.transactions for p in _patients_of(t)} == {
        "Patient/p0", "Patient/p1"}
