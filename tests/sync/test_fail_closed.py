"""Fail closed: the watermark never passes a response whose writes did not succeed.

A misbehaving server, scripted with respx (a real HAPI cannot be made to answer 401 or a login
page on cue): the transaction POST answers what each test says; everything else is the fake
server of test_runner.py. Each case names the failure, its cause in the report, what happens
to the watermark and to the patient.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import update
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir.errors import EXIT_CONFIG, EXIT_NOPERM
from bhi_fhir.store import PendingPatient, Store
from bhi_fhir.sync import SyncConfig, run_sync
from tests.sync.test_runner import BASE, TODAY, FakeServer, _no_backoff  # noqa: F401

START = "2026-11-25T00:00:00Z"  # the stored watermark before each run
_register()
# meta.lastUpdated of Patient/p<i>'s response: 10:00, 11:00, ... (the search ran at 12:00)
def _response_time(i: int) -> str:
    return f"2026-11-26T{10 + i}:00:00Z"


Answer = Callable[[dict[str, Any]], httpx.Response | Exception]

HTML = httpx.Response(200, headers={"Content-Type": "text/html"},
                      content=b"<html><body>Sign in to continue</body></html>")


def _outcome(status: int, code: str = "invariant") -> httpx.Response:
    return httpx.Response(status, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "expression": ["Task.for"],
         "diagnostics": "Patient John Doe born 1970-01-01 is invalid"}]})


def _created(bundle: dict[str, Any], drop: int = 0) -> httpx.Response:
    entries = bundle["entry"][: len(bundle["entry"]) - drop]
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                     "entry": [{"response": {
                                         "status": "201 Created",
                                         "location": f"{e['resource']['resourceType']}/{i}"}}
                                         for i, e in enumerate(entries)]})


class Misbehaving(FakeServer):
    """The fake server, with transactions answered by ``answer(bundle)`` (default: created)."""

    def __init__(self, patients: int = 2, answer: Answer | None = None) -> None:
        super().__init__(patients)
        for i, qr in enumerate(self.responses):
            qr["meta"]["lastUpdated"] = _response_time(i)
        self.stored = list(self.responses)  # every response; ``responses`` = the changed ones
        self.answer = answer
        self.transaction_count = 0
        self.router = respx.MockRouter(base_url=BASE, assert_all_called=False)
        self.router.post(BASE).mock(side_effect=self._post)
        self.router.route().mock(side_effect=self)

    def _post(self, request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        if bundle["type"] == "batch":  # context searches: each patient's responses
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Bundle", "type": "searchset",
                              "entry": self._context(e["request"]["url"])},
                 "response": {"status": "200 OK"}} for e in bundle["entry"]]})
        if self.answer is None:
            return self(request)
        self.transaction_count += 1
        result = self.answer(bundle)
        if isinstance(result, Exception):
            raise result
        if result.is_success and result.headers.get("content-type", "").startswith(
            "application/json"
        ):
            self.transactions.append(bundle)
        return result

    def _context(self, url: str) -> list[dict[str, Any]]:
        if not url.startswith("QuestionnaireResponse?"):
            return []
        patients = httpx.URL("/?" + url.split("?", 1)[1]).params["patient"].split(",")
        return [{"resource": qr, "search": {"mode": "match"}} for qr in self.stored
                if qr["subject"]["reference"] in patients]

    def config(self, tmp_path: Path, **kw: Any) -> SyncConfig:
        return SyncConfig(server=BASE, today=TODAY, state_url=_url(tmp_path),
                          transport=httpx.MockTransport(self.router.async_handler),
                          max_retries=1, **kw)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 's.db'}"


def _store(tmp_path: Path, watermark: str | None = START) -> Store:
    store = Store.open(_url(tmp_path))
    if watermark:
        store.advance_watermark(BASE, watermark, run_id=None)
    return store


def _by_patient(refuse: str, status: int = 422) -> Answer:
    """Refuse any transaction holding ``refuse``'s writes; create the rest."""
    def answer(bundle: dict[str, Any]) -> httpx.Response:
        if refuse in json.dumps(bundle):
            return _outcome(status)
        return _created(bundle)
    return answer


# --- authorization / configuration: the run stops, the watermark stays -------------------------


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        pytest.param(lambda b: httpx.Response(401), "authorization", id="401-token-expired"),
        pytest.param(lambda b: _outcome(403, "forbidden"), "authorization", id="403-no-scope"),
        pytest.param(lambda b: HTML, "configuration", id="200-text/html-login-page"),
        pytest.param(lambda b: _created(b, drop=1), "configuration", id="fewer-entries"),
        pytest.param(
            lambda b: httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                {"response": {"status": "400 Bad Request"}} for _ in b["entry"]]}),
            "configuration", id="entries-not-2xx"),
        pytest.param(
            lambda b: httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                {"response": {"status": "201 Created", "location": "Patient/x/_history/1"}}
                for _ in b["entry"]]}),
            "configuration", id="entries-of-another-type"),
        pytest.param(lambda b: httpx.Response(404), "configuration", id="404-wrong-base"),
    ],
)
async def test_a_run_wide_failure_stops_the_run_and_keeps_the_watermark(
    tmp_path: Path, answer: Answer, cause: str
) -> None:
    store = _store(tmp_path)
    server = Misbehaving(3, answer)
    report = await run_sync(server.config(tmp_path, group_size=1, workers=1), store=store)
    assert report.status == "failed", report.to_text()
    assert store.watermark(BASE) == START and report.watermark == START
    assert [(p.subject, p.cause) for p in report.errors] == [("run", cause)]
    assert server.transaction_count == 1, "stopped after the first failure"
    assert store.pending(BASE) == []  # nobody given up on: the next run reads them all again
    assert report.to_dict()["failuresByCause"] == {cause: 1}
    assert store.run(report.run_id).errors[0]["cause"] == cause


async def test_a_login_page_on_the_context_read_stops_the_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    server = Misbehaving(2)
    server.router.post(BASE).mock(return_value=HTML)  # the batch read too
    report = await run_sync(server.config(tmp_path), store=store)
    assert report.status == "failed" and report.errors[0].cause == "configuration"
    assert store.watermark(BASE) == START


# --- transient: the watermark is held below the patient's responses ----------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("no answer"), id="timeout-outcome-unknown"),
        pytest.param(httpx.Response(500), id="500"),
        pytest.param(httpx.Response(400, text="Bad Request"), id="400-no-outcome"),
    ],
)
async def test_a_transient_failure_holds_the_watermark_at_the_response(
    tmp_path: Path, failure: httpx.Response | Exception
) -> None:
    store = _store(tmp_path)
    server = Misbehaving(2, lambda b: failure if "Patient/p0" in json.dumps(b) else _created(b))
    report = await run_sync(server.config(tmp_path, group_size=1), store=store)
    assert report.status == "partial", report.to_text()
    assert [(p.subject, p.cause, p.retry) for p in report.errors] == [
        ("Patient/p0", "transient", True)]
    # Held at p0's response although p1's (11:00) was written: the next run's
    # _lastUpdated=ge… search reads p0's again.
    assert store.watermark(BASE) == _response_time(0)


# --- refused: the patient is held for an operator, retried with backoff -------------------------


def _make_due(store: Store) -> None:
    with store._session() as session, session.begin():
        session.execute(update(PendingPatient).values(
            next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))


async def test_a_refused_patient_is_held_and_retried_until_it_succeeds(tmp_path: Path) -> None:
    store = _store(tmp_path)
    server = Misbehaving(2, _by_patient("Patient/p1"))
    report = await run_sync(server.config(tmp_path, group_size=2), store=store)
    assert report.status == "partial"
    assert [(p.subject, p.cause, p.retry) for p in report.errors] == [
        ("Patient/p1", "refused", False)]
    (held,) = store.pending(BASE)
    assert (held.patient, held.cause, held.attempts) == ("Patient/p1", "refused", 1)
    assert "John" not in held.reason and "[invariant] Task.for" in held.reason  # no PHI
    assert held.next_attempt_at > datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=4)
    assert report.pending == {"refused": 1}
    assert "pending: 1 patients held" in report.to_text()
    assert report.to_dict()["pending"] == {"patients": 1, "byCause": {"refused": 1}}
    # The hold is the record of p1's work: the watermark may pass its response.
    assert store.watermark(BASE) != START

    # Nothing new on the server; p1 is not due yet: not retried.
    server.responses = []
    server.transactions.clear()
    again = await run_sync(server.config(tmp_path), store=store)
    assert again.patients == 0 and not server.transactions

    # Due and still refused: one more attempt, a longer backoff.
    _make_due(store)
    again = await run_sync(server.config(tmp_path), store=store)
    (held2,) = store.pending(BASE)
    assert again.patients == 1 and held2.attempts == 2
    assert held2.next_attempt_at - held2.last_failed_at == timedelta(minutes=10)

    # The operator fixed the server: the next due retry writes p1 and releases it.
    _make_due(store)
    server.answer = None
    done = await run_sync(server.config(tmp_path), store=store)
    assert done.status == "ok", done.to_text()
    assert {e["resource"].get("for", {}).get("reference") for t in server.transactions
            for e in t["entry"]} >= {"Patient/p1"}
    assert store.pending(BASE) == [] and done.pending == {}


async def test_a_notified_run_retries_due_held_patients_too(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.hold_patient(BASE, "Patient/p1", cause="refused", reason="Unprocessable 422",
                       run_id=None)
    _make_due(store)
    server = Misbehaving(3)
    report = await run_sync(server.config(tmp_path, patient="Patient/p0"), store=store)
    assert report.status == "ok" and report.patients == 2
    assert store.pending(BASE) == []
    assert store.watermark(BASE) == START  # a patient-scoped run never moves it


async def test_a_held_patient_failing_transiently_stays_held(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.hold_patient(BASE, "Patient/p1", cause="refused", reason="Unprocessable 422",
                       run_id=None)
    _make_due(store)
    server = Misbehaving(2, lambda b: httpx.Response(503))
    server.responses = []  # nothing changed: p1 is retried from the hold alone
    await run_sync(server.config(tmp_path), store=store)
    (held,) = store.pending(BASE)  # below the watermark: the hold is its only record
    assert (held.cause, held.attempts) == ("transient", 2)


# --- the journal --------------------------------------------------------------------------------


async def test_an_unexpected_exception_does_not_leave_the_run_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bhi_fhir.sync.runner as runner

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(runner, "plan_patient", broken)
    store = _store(tmp_path)
    server = Misbehaving(1)
    with pytest.raises(RuntimeError):
        await run_sync(server.config(tmp_path), store=store)
    (record,) = store.runs(BASE)
    assert record.status == "failed" and record.finished_at is not None
    assert store.watermark(BASE) == START


async def test_a_run_left_running_by_a_dead_process_is_marked_abandoned(tmp_path: Path) -> None:
    store = _store(tmp_path)
    dead = store.start_run(BASE)
    server = Misbehaving(1)
    await run_sync(server.config(tmp_path, stale_run_after=timedelta(0)), store=store)
    assert store.run(dead).status == "abandoned"


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        pytest.param(lambda b: httpx.Response(401), EXIT_NOPERM, id="authorization-77"),
        pytest.param(lambda b: HTML, EXIT_CONFIG, id="configuration-78"),
    ],
)
def test_sync_exits_with_the_cause_of_a_stopped_run(
    tmp_path: Path, answer: Answer, code: int
) -> None:
    server = Misbehaving(1, answer)
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.route().mock(side_effect=server.router.async_handler)
        result = CliRunner().invoke(app, ["sync", "--server", BASE, "--state-url",
                                          _url(tmp_path), "--today", TODAY.isoformat(),
                                          "--max-retries", "0"])
    assert result.exit_code == code, result.output
    assert Store.open(_url(tmp_path)).watermark(BASE) is None


def test_sync_failed_lists_held_patients_and_resolve_releases_them(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.hold_patient(BASE, "Patient/p1", cause="refused",
                       reason="Unprocessable 422: error [invariant] Task.for", run_id=None)
    runner = CliRunner()
    listed = runner.invoke(app, ["sync", "--server", BASE, "--state-url", _url(tmp_path),
                                 "--failed", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert (row["patient"], row["cause"], row["attempts"]) == ("Patient/p1", "refused", 1)
    assert set(row) == {"patient", "cause", "reason", "attempts", "firstFailed", "lastFailed",
                        "nextAttempt"}  # the patient id, no other PHI
    text = runner.invoke(app, ["sync", "--server", BASE, "--state-url", _url(tmp_path),
                               "--failed"])
    assert "Patient/p1  refused" in text.stdout
    resolved = runner.invoke(app, ["sync", "--server", BASE, "--state-url", _url(tmp_path),
                                   "--resolve", "Patient/p1"])
    assert resolved.exit_code == 0 and store.pending(BASE) == []
    again = runner.invoke(app, ["sync", "--server", BASE, "--state-url", _url(tmp_path),
                                "--resolve", "Patient/p1"])
    assert again.exit_code == 1
