"""Fail closed on the real HAPI: a misbehaving path to the server loses and duplicates nothing.

The fault-injecting proxy of test_sync_reliability.py sits between ``bhi-fhir sync`` and HAPI
and spoils the transaction POSTs (reads pass through untouched). Each case: a first run with
the fault — its exit code and report name the cause, the watermark in the store did not pass a
response whose writes failed, nothing is lost —; then a run without it: every planned write,
among them the crisis ServiceRequest and Task of a PHQ-9 item-9 response, is on the server
exactly once. A refused patient is held in the store's pending table, listed by
``sync --failed`` and written by the next run once the server accepts it.

A small clinic (7 patients, scenarios of examples/generate_clinic.py) per case keeps the
file fast; the stored watermark starts at ``START`` so "unchanged" is checked against a value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhir.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_NOPERM
from bhi_fhir.store import PendingPatient, Store
from bhi_fhir.sync import run_sync
from bhi_fhir.sync.runner import default_plan_path
from tests.integration.conftest import CASE_SYSTEM, RunTag
from tests.integration.test_sync import (
    _delete_case,  # noqa: F401  (autouse fixture: deletes this case's resources)
    assert_complete,
    config,
    identifiers_on_server,
    planned_creates,
    seed_clinic,
)
from tests.integration.test_sync_reliability import _CLI, FaultProxy, _sync_command

PATIENTS = 7
# Patient index 6 is the clinic's "phq9-item9" scenario: PHQ-9 total 8 with item 9 = 1, so
# the sync writes a crisis-assessment ServiceRequest + Task (and the screening Observations).
# It is the clinic's only crisis: no other patient's writes name the clinician on duty.
CRISIS = "p00006"
START = "2026-01-01T00:00:00Z"  # the stored watermark before the first run


@dataclass
class Clinic:
    base: str  # HAPI itself
    proxied: str  # the same server through the proxy: what the sync is given
    proxy: FaultProxy
    run_tag: RunTag
    case_id: str
    state: Path
    expected: set[str]  # identifiers a clean dry run plans to create
    crisis: str  # Patient/<prefix>p00006
    crisis_writes: list[tuple[str, str]]  # (resource type, identifier) of its crisis writes
    seeded: dict[str, int]  # what the server held before any sync (the clinic's own Task)

    def store(self) -> Store:
        return Store.open(f"sqlite:///{self.state}")

    def watermark(self) -> str | None:
        store = self.store()
        try:
            return store.watermark(self.proxied)
        finally:
            store.close()

    def command(self, *extra: str) -> list[str]:
        # fast failure: one retry, so a 500 costs a second, not the client's full backoff
        return [*_sync_command(self.proxied, self.run_tag, self.case_id, self.state),
                "--max-retries", "1", "--timeout", "20", *extra]


@pytest.fixture
async def clinic(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> AsyncIterator[Clinic]:
    seed_clinic(fhir_base_url, run_tag, case_id, PATIENTS)
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    assert dry.status == "ok", dry.to_text()
    crisis = next(d.patient for d in dry.diffs if d.patient.endswith(f"-{CRISIS}"))
    crisis_writes = [
        (c.resource_type, c.identifier)
        for d in dry.diffs if d.patient == crisis
        for c in d.changes if c.rule == "crisis-assessment" and c.change == "create"
    ]
    assert sorted(t for t, _ in crisis_writes) == ["ServiceRequest", "Task"], crisis_writes
    upstream = httpx.URL(fhir_base_url)
    proxy = FaultProxy(f"{upstream.scheme}://{upstream.host}:{upstream.port}")
    origin = await proxy.start()
    proxied = origin + upstream.path
    state = tmp_path / "state.db"
    store = Store.open(f"sqlite:///{state}")
    store.advance_watermark(proxied.rstrip("/"), START, run_id=None)
    store.close()
    try:
        yield Clinic(fhir_base_url, proxied, proxy, run_tag, case_id, state,
                     planned_creates(dry), crisis, crisis_writes,
                     dict(identifiers_on_server(fhir_base_url, case_id)))
    finally:
        await proxy.stop()


async def _cli(command: list[str]) -> tuple[int, str]:
    """Run the command line in a subprocess (the proxy serves it from this event loop)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()[-2000:]


def _report(output: str) -> dict[str, Any]:
    """The JSON report the sync printed (stdout comes first in ``_cli``'s output)."""
    report: dict[str, Any] = json.JSONDecoder().raw_decode(output)[0]
    return report


def _by_identifier(base: str, resource_type: str, identifier: str) -> list[dict[str, Any]]:
    bundle = httpx.get(
        f"{base}/{resource_type}",
        params={"identifier": f"{BHI_IDENTIFIER}|{identifier}"},
        headers={"Cache-Control": "no-cache"}, timeout=30,
    ).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def _response_times(base: str, case_id: str, patient: str) -> list[str]:
    """meta.lastUpdated of ``patient``'s QuestionnaireResponses."""
    bundle = httpx.get(
        f"{base}/QuestionnaireResponse",
        params={"_tag": f"{CASE_SYSTEM}|{case_id}", "subject": patient},
        headers={"Cache-Control": "no-cache"}, timeout=30,
    ).json()
    return [e["resource"]["meta"]["lastUpdated"] for e in bundle.get("entry", [])]


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _clean_run_writes_everything_once(clinic: Clinic, **kw: Any) -> None:
    """The fault is gone: a run through the same proxy (same store key) completes the work."""
    clinic.proxy.transaction_fault = None
    report = await run_sync(config(clinic.proxied, clinic.run_tag, clinic.case_id, clinic.state,
                                   max_retries=1, **kw))
    assert report.status == "ok", report.to_text()
    assert_complete(clinic.base, clinic.case_id, clinic.expected)  # no duplicate, none missing
    for resource_type, identifier in clinic.crisis_writes:
        (found,) = _by_identifier(clinic.base, resource_type, identifier)
        subject = found.get("subject") or found.get("for")
        assert subject == {"reference": clinic.crisis}, found
    watermark = clinic.watermark()
    assert watermark is not None and _instant(watermark) > _instant(START)
    store = clinic.store()
    try:
        assert store.pending(clinic.proxied) == []
    finally:
        store.close()


# --- authorization / configuration: the run stops, exit 77 / 78, the watermark stays ----------


@pytest.mark.parametrize(
    ("fault", "code", "cause"),
    [
        pytest.param("401", EXIT_NOPERM, "authorization", id="401-token-expired-77"),
        pytest.param("html", EXIT_CONFIG, "configuration", id="200-text/html-login-page-78"),
        pytest.param("drop-entry", EXIT_CONFIG, "configuration",
                     id="transaction-response-entry-dropped-78"),
    ],
)
async def test_a_stopped_run_keeps_the_watermark_and_the_next_run_completes(
    clinic: Clinic, fault: str, code: int, cause: str
) -> None:
    clinic.proxy.transaction_fault = fault
    exit_code, output = await _cli(clinic.command())
    assert exit_code == code, output
    report = _report(output)
    assert report["status"] == "failed"
    assert [(e["subject"], e["cause"]) for e in report["errors"]] == [("run", cause)]
    assert clinic.proxy.faults[fault] >= 1
    assert clinic.watermark() == START and report["watermark"] == START
    store = clinic.store()
    try:
        assert store.pending(clinic.proxied) == []  # nobody given up on: all are read again
    finally:
        store.close()
    on_server = identifiers_on_server(clinic.base, clinic.case_id)
    if fault == "drop-entry":
        # HAPI wrote that transaction; only its answer was short. The next run must find it.
        assert len(on_server) > len(clinic.seeded)
    else:
        assert dict(on_server) == clinic.seeded  # refused before HAPI saw it: nothing written

    await _clean_run_writes_everything_once(clinic)


# --- transient: the watermark is held at the failed response ----------------------------------


async def test_a_500_on_the_crisis_patient_holds_the_watermark_at_its_response(
    clinic: Clinic,
) -> None:
    clinic.proxy.transaction_fault = "500"
    clinic.proxy.transaction_match = f'"{clinic.crisis}"'  # only the crisis patient's writes
    exit_code, output = await _cli(clinic.command("--group-size", "1"))
    assert exit_code == EXIT_FAILURE, output
    report = _report(output)
    assert report["status"] == "partial"
    assert [(e["subject"], e["cause"], e["retry"]) for e in report["errors"]] == [
        (clinic.crisis, "transient", True)]
    assert clinic.proxy.faults["500"] >= 1
    for resource_type, identifier in clinic.crisis_writes:
        assert _by_identifier(clinic.base, resource_type, identifier) == []
    # The others were written, yet the watermark is not past the crisis patient's response:
    # the next run's _lastUpdated search reads it again. (Here it is also below it because it
    # stays 30 s behind the server's clock; the crisis writes created by the clean run below
    # show the response was read again.)
    watermark = clinic.watermark()
    assert watermark is not None
    assert all(_instant(watermark) <= _instant(t)
               for t in _response_times(clinic.base, clinic.case_id, clinic.crisis))
    store = clinic.store()
    try:
        assert store.pending(clinic.proxied) == []  # transient: the watermark is the record
    finally:
        store.close()

    await _clean_run_writes_everything_once(clinic)


# --- refused: the patient is held, listed, and written once the server accepts it --------------


@pytest.mark.parametrize(
    "refusal",
    [
        # HAPI itself: the plan's clinician on duty (owner of the crisis Task) is not on the
        # server, so it answers 400 + OperationOutcome (HAPI-1094) to that transaction.
        pytest.param("hapi-unknown-reference", id="hapi-400-unknown-plan-reference"),
        pytest.param("proxy-422", id="proxy-422-operation-outcome"),
    ],
)
async def test_a_refused_patient_is_held_listed_and_written_by_a_later_run(
    clinic: Clinic, refusal: str, tmp_path: Path
) -> None:
    plan = default_plan_path()
    on_duty = f"PractitionerRole/on-duty-{clinic.case_id[:12]}"
    if refusal == "hapi-unknown-reference":
        text = plan.read_text(encoding="utf-8")
        assert text.count('"PractitionerRole/on-duty-clinician"') == 1
        plan = tmp_path / "practice-plan.toml"
        plan.write_text(text.replace('"PractitionerRole/on-duty-clinician"', f'"{on_duty}"'),
                        encoding="utf-8")
    else:
        clinic.proxy.transaction_fault = "422"
        clinic.proxy.transaction_match = f'"{clinic.crisis}"'
    exit_code, output = await _cli(clinic.command("--plan", str(plan)))
    assert exit_code == EXIT_FAILURE, output
    report = _report(output)
    assert report["status"] == "partial"
    # the transaction was split until the one patient the server refuses was found
    assert [(e["subject"], e["cause"], e["retry"]) for e in report["errors"]] == [
        (clinic.crisis, "refused", False)]
    assert report["pending"] == {"patients": 1, "byCause": {"refused": 1}}
    on_server = identifiers_on_server(clinic.base, clinic.case_id)
    missing = {i for i in clinic.expected if not any(k.endswith(f"|{i}") for k in on_server)}
    assert {i for _, i in clinic.crisis_writes} <= missing  # the crisis work is held, ...
    assert len(missing) < len(clinic.expected)  # ... the other patients' was written

    exit_code, listed = await _cli([str(_CLI), "sync", "--server", clinic.proxied,
                                    "--state-url", f"sqlite:///{clinic.state}",
                                    "--failed", "--format", "json"])
    assert exit_code == 0, listed
    (row,) = json.JSONDecoder().raw_decode(listed)[0]
    assert (row["patient"], row["cause"], row["attempts"]) == (clinic.crisis, "refused", 1)

    # The server accepts the patient now; the hold is due (its backoff has passed).
    if refusal == "hapi-unknown-reference":
        role = clinic.run_tag.tag({"resourceType": "PractitionerRole",
                                   "id": on_duty.split("/")[1]})
        httpx.put(f"{clinic.base}/{on_duty}", json=role, timeout=30).raise_for_status()
    store = clinic.store()
    try:
        with store._session() as session, session.begin():
            session.execute(update(PendingPatient).values(
                next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    finally:
        store.close()
    await _clean_run_writes_everything_once(clinic, plan_path=plan)
    if refusal == "hapi-unknown-reference":
        (task,) = (r for t, i in clinic.crisis_writes if t == "Task"
                   for r in _by_identifier(clinic.base, t, i))
        assert task["owner"]["reference"] == on_duty
    exit_code, listed = await _cli([str(_CLI), "sync", "--server", clinic.proxied,
                                    "--state-url", f"sqlite:///{clinic.state}", "--failed"])
    assert exit_code == 0 and "0 patients held" in listed, listed
