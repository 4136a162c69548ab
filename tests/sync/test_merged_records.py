"""Merged records in sync: a response on a replaced record is planned for the surviving patient.

FHIR R4 Patient.link (https://hl7.org/fhir/R4/patient-definitions.html#Patient.link): a link of
type replaced-by means "the patient resource containing this link must no longer be used. The
link points forward to another patient resource that must be used in lieu of the patient
resource that contains this link." ``apply`` over files already regroups such a record into its
survivor (tests/workflow/test_patient_record.py); these are the same rules against a scripted
server that keeps what it is sent, so a second run meets the first one's writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhirjson import patient_of
from bhi_fhir.sync import run_sync
from bhi_fhir.sync.planning import PatientContext, merge_contexts
from tests.fhir.capability import capability_statement
from tests.sync.test_runner import FakeServer, _config, _no_backoff, _qr  # noqa: F401 (fixture)
from tests.workflow.helpers import consent

TODAY_AUTHORED = "2026-11-26"  # test_runner.TODAY: the crisis protocol acts on a fresh item 9


def _patient(pid: str, replaced_by: str | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": "female", **fields}
    if replaced_by is not None:
        record["active"] = False
        record["link"] = [{"type": "replaced-by", "other": {"reference": replaced_by}}]
    return record


def _identifiers(resource: dict[str, Any]) -> list[str]:
    return [str(i.get("value")) for i in resource.get("identifier") or []
            if i.get("system") == BHI_IDENTIFIER]


class MergeServer(FakeServer):
    """FakeServer whose batch searches answer from ``stored`` and whose transactions store
    (conditional creates honoured), so a re-run sees what the first run wrote."""

    def __init__(self, patients: list[dict[str, Any]], responses: list[dict[str, Any]],
                 others: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(0)
        self.responses = responses
        self.stored: list[dict[str, Any]] = [*patients, *responses, *others]
        self.batches: list[list[str]] = []

    includes = False  # answer like HAPI: _include=QuestionnaireResponse:subject supported

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir").strip("/")
        if self.includes and path == "metadata":
            types = ("Patient", "QuestionnaireResponse", "Task", "ServiceRequest", "CarePlan",
                     "Encounter", "Observation", "Provenance", "Consent", "Procedure")
            return httpx.Response(200, json=capability_statement(types=types, overrides={
                "QuestionnaireResponse": {"searchInclude": ["QuestionnaireResponse:subject"]}}))
        if self.includes and path == "QuestionnaireResponse":
            subjects = {qr["subject"]["reference"] for qr in self.responses}
            return httpx.Response(200, json={
                "resourceType": "Bundle", "type": "searchset",
                "meta": {"lastUpdated": "2026-11-26T12:00:00Z"},
                "entry": [*({"resource": qr, "search": {"mode": "match"}}
                            for qr in self.responses),
                          *({"resource": r, "search": {"mode": "include"}}
                            for r in self.stored if patient_of(r) in subjects
                            and r["resourceType"] == "Patient")]})
        if path == "" and request.method == "POST":
            bundle = json.loads(request.content)
            if bundle["type"] == "batch":
                urls = [e["request"]["url"] for e in bundle["entry"]]
                self.batches.append(urls)
                return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                    {"resource": self._search(u), "response": {"status": "200 OK"}}
                    for u in urls]})
            if self.transaction_statuses and (status := self.transaction_statuses.pop(0)) != 200:
                return httpx.Response(status, json={"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "transient", "diagnostics": "scripted"}]})
            self.transactions.append(bundle)
            before = len(self.stored)
            answers = [self._write(e, i) for i, e in enumerate(bundle["entry"])]
            # as a server does: the transaction's urn:uuid references become Type/id
            text = json.dumps(self.stored[before:])
            for entry, answer in zip(bundle["entry"], answers, strict=True):
                if (location := answer["response"].get("location")) is not None:
                    text = text.replace(entry["fullUrl"], location.split("/_history")[0])
            self.stored[before:] = json.loads(text)
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": answers})
        return super().__call__(request)

    def _search(self, url: str) -> dict[str, Any]:
        kind, _, query = url.partition("?")
        params = dict(parse_qsl(query))
        found = [r for r in self.stored if r["resourceType"] == kind]
        if "_id" in params:
            found = [r for r in found if r.get("id") in params["_id"].split(",")]
        if "patient" in params:
            found = [r for r in found if patient_of(r) in params["patient"].split(",")]
        if "identifier" in params:
            found = [r for r in found if _identifiers(r)]
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in found]}

    def _write(self, entry: dict[str, Any], index: int) -> dict[str, Any]:
        resource, request = entry["resource"], entry["request"]
        condition = request.get("ifNoneExist")
        if condition and any(self._matches(r, condition) for r in self.stored):
            return {"response": {"status": "200 OK"}}
        if request["method"] == "PUT":
            rid = request["url"].split("/")[1]
            self.stored = [r for r in self.stored
                           if not (r["resourceType"] == resource["resourceType"]
                                   and r.get("id") == rid)]
        else:
            rid = f"w{len(self.stored)}-{index}"
        self.stored.append({**resource, "id": rid, "meta": {
            **resource.get("meta", {}), "versionId": "1"}})
        return {"response": {"status": "201 Created",
                             "location": f"{resource['resourceType']}/{rid}/_history/1"}}

    @staticmethod
    def _matches(resource: dict[str, Any], condition: str) -> bool:
        params = dict(parse_qsl(condition))
        if "_tag" in params:
            code = params["_tag"].split("|", 1)[1]
            return any(t.get("code") == code for t in (resource.get("meta") or {}).get("tag", []))
        value = params["identifier"].split("|", 1)[1]
        return value in _identifiers(resource) and (
            "patient" not in params or patient_of(resource) == params["patient"])


def _response_on(patient: str, qr_id: str = "qr-old") -> dict[str, Any]:
    qr = _qr(patient, qr_id)  # PHQ-9 moderate, suicide item answered: crisis (Kroenke 2001)
    qr["authored"] = TODAY_AUTHORED
    return qr


def _survivor_consent() -> dict[str, Any]:
    agreed = consent()
    agreed["patient"] = {"reference": "Patient/new"}
    return agreed


def _entries(server: FakeServer) -> list[dict[str, Any]]:
    return [e for t in server.transactions for e in t["entry"]]


def _subjects(server: FakeServer) -> set[str]:
    return {patient_of(e["resource"]) or "" for e in _entries(server)
            if e["resource"]["resourceType"] != "Provenance"}


async def test_a_screen_on_a_replaced_record_plans_the_surviving_patient(tmp_path: Path) -> None:
    """R4 Patient.link replaced-by: the survivor (consent on file) gets the crisis work and the
    enrollment the replaced record's screen calls for; the replaced record gets nothing, and no
    write names it — the screening Observations included."""
    server = MergeServer([_patient("old", "Patient/new"), _patient("new")],
                         [_response_on("Patient/old")], [_survivor_consent()])
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    assert _subjects(server) == {"Patient/new"}
    written = json.dumps(_entries(server))
    assert "Patient/old" not in written
    kinds = {e["resource"]["resourceType"] for e in _entries(server)}
    assert {"ServiceRequest", "Task", "Observation", "Provenance"} <= kinds
    assert report.planned["merged"]["merged"] == 1
    assert {"enroll", "crisis-assessment"} <= set(report.planned)
    # Both records' context in group batches: the changed record's, then its survivor's —
    # never one request per patient.
    assert len(server.batches) == 2
    assert any("Patient%2Fold" in u or "Patient/old" in u for u in server.batches[0])
    assert any("Patient/new" in u for u in server.batches[1])
    assert report.watermark is not None


async def test_an_included_replaced_record_brings_its_survivor_into_the_same_batch(
    tmp_path: Path,
) -> None:
    """When the response search includes its subject (searchInclude), the link is known before
    the context read: both records' context comes from the group's one batch."""
    server = MergeServer([_patient("old", "Patient/new"), _patient("new")],
                         [_response_on("Patient/old")], [_survivor_consent()])
    server.includes = True
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    assert _subjects(server) == {"Patient/new"}
    assert len(server.batches) == 1
    assert any("Patient/old,Patient/new" in u for u in server.batches[0])


async def test_a_replaced_record_and_its_survivor_in_one_run_are_planned_once(
    tmp_path: Path,
) -> None:
    """Both records changed: one plan (the survivor's), read in one batch."""
    server = MergeServer([_patient("old", "Patient/new"), _patient("new")],
                         [_response_on("Patient/old"), _response_on("Patient/new", "qr-new")],
                         [_survivor_consent()])
    report = await run_sync(_config(server, tmp_path, dry_run=True))
    assert report.status == "ok", report.to_text()
    assert [d.patient for d in report.diffs] == ["Patient/new"]
    assert len(server.batches) == 1


async def test_a_re_run_writes_nothing_new(tmp_path: Path) -> None:
    """Exactly once across merges: the second run finds the survivor's writes (their
    conditional creates are keyed by the survivor) and adds none."""
    server = MergeServer([_patient("old", "Patient/new"), _patient("new")],
                         [_response_on("Patient/old")], [_survivor_consent()])
    first = await run_sync(_config(server, tmp_path))
    assert first.status == "ok" and first.written["created"] > 0
    stored = len(server.stored)
    again = await run_sync(_config(server, tmp_path, since="2026-11-26T00:00:00Z"))
    assert again.status == "ok", again.to_text()
    assert again.written["created"] == 0 and again.provenance["created"] == 0
    assert len(server.stored) == stored


@pytest.mark.parametrize(
    ("stored_patients", "source"),
    [([_patient("old", "Patient/gone")],
      "survivor not on the server: nothing is known about that person (apply's rule)"),
     ([_patient("old", "Patient/mid"), _patient("mid", "Patient/gone")],
      "a chain whose end cannot be read stays with the changed record")],
    ids=["survivor-missing", "chain-end-missing"],
)
async def test_crisis_on_a_replaced_record_without_its_survivor_still_goes_out(
    tmp_path: Path, stored_patients: list[dict[str, Any]], source: str,
) -> None:
    """R4 Patient.link replaced-by + Kroenke 2001, SAFE-T: a crisis answer is never lost; the
    record is inactive, so crisis work only, on the record itself, its reason naming the link."""
    server = MergeServer(stored_patients, [_response_on("Patient/old")])
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    entries = _entries(server)
    kinds = {e["resource"]["resourceType"] for e in entries
             if e["resource"]["resourceType"] != "Observation"}
    assert {"ServiceRequest", "Task"} <= kinds, source
    assert _subjects(server) == {"Patient/old"}, source
    assert "merged" not in report.planned, source
    assert {r for r in report.planned if r not in ("screening",)} <= {
        "crisis-assessment", "crisis-referral"}, source
    assert "(this record is replaced by" in json.dumps(entries), source


async def test_a_replaced_by_cycle_is_not_followed(tmp_path: Path) -> None:
    """a → b → a: neither record survives the other; each is planned as itself (inactive:
    crisis work only), and the reads stop."""
    server = MergeServer([_patient("a", "Patient/b"), _patient("b", "Patient/a")],
                         [_response_on("Patient/a", "qr-a")])
    report = await run_sync(_config(server, tmp_path))
    assert report.status == "ok", report.to_text()
    assert "merged" not in report.planned
    assert _subjects(server) == {"Patient/a"}
    assert len(server.batches) == 2  # a's group, then b once; the cycle ends there


async def test_a_failed_survivor_write_holds_the_watermark_below_the_replaced_records_response(
    tmp_path: Path,
) -> None:
    """Fail closed across a merge: the survivor's transaction fails (503, retries exhausted),
    so the replaced record's response is read again by the next run."""
    server = MergeServer([_patient("old", "Patient/new"), _patient("new")],
                         [_response_on("Patient/old")], [_survivor_consent()])
    server.transaction_statuses = [503] * 3
    report = await run_sync(_config(server, tmp_path, max_retries=2))
    assert report.status == "partial" and report.errors[0].retry
    assert {p.subject for p in report.errors} == {"Patient/new", "Patient/old"}
    assert report.watermark == server.responses[0]["meta"]["lastUpdated"]


def _context(pid: str, replaced_by: str | None = None) -> PatientContext:
    return PatientContext(f"Patient/{pid}", _patient(pid, replaced_by),
                          resources=[{"resourceType": "Task", "id": f"t-{pid}"}],
                          observation_ids={f"obs-{pid}"})


@pytest.mark.parametrize(
    ("records", "patients", "expected"),
    [
        ({"a": "Patient/b", "b": None}, ["a"], {"Patient/b": ["Patient/a"]}),
        ({"a": "Patient/b", "b": "Patient/c", "c": None}, ["a"],
         {"Patient/c": ["Patient/a", "Patient/b"]}),
        ({"a": "Patient/b", "b": None}, ["b", "a"], {"Patient/b": ["Patient/a"]}),
        ({"a": "Patient/b"}, ["a"], {"Patient/a": []}),
        ({"a": "Patient/b", "b": "Patient/a"}, ["a"], {"Patient/a": []}),
        ({"a": "Patient/a"}, ["a"], {"Patient/a": []}),
    ],
    ids=["one-link", "chain", "both-changed", "survivor-unread", "cycle", "self-link"],
)
def test_merge_contexts(records: dict[str, str | None], patients: list[str],
                        expected: dict[str, list[str]]) -> None:
    """R4 Patient.link replaced-by, followed to the record that must be used; a cycle or a
    survivor that could not be read leaves the record as itself (the apply pipeline's survivors)."""
    contexts = {f"Patient/{p}": _context(p, s) for p, s in records.items()}
    units = merge_contexts([f"Patient/{p}" for p in patients], contexts)
    assert {u.patient: u.merged for u in units} == expected
    for unit in units:
        folded = [unit.patient, *unit.merged]
        assert {r["id"] for r in unit.resources} == {f"t-{p.split('/')[1]}" for p in folded}
        assert unit.observation_ids == {f"obs-{p.split('/')[1]}" for p in folded}
