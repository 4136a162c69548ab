"""The receiver's run queue: coalescing, the global limit, overflow, failures, shutdown.

Notifications go through the real router (httpx ASGITransport, in the test's event loop);
the coroutine the receiver runs (``webhook._run``) is replaced by :class:`FakeRuns`, which
blocks on a gate until the test opens it — synchronisation by events, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bhi_fhir.sync import webhook
from bhi_fhir.sync.queue import SyncQueue
from bhi_fhir.sync.report import RunReport


class FakeRuns:
    """Stands in for ``webhook._run``; each run reads the patient's data when it starts."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()  # closed: runs stay in flight
        self.gates: dict[int, asyncio.Event] = {}  # per run (0-based), instead of the gate
        self._started = asyncio.Condition()
        self.writes: Counter[str | None] = Counter()  # the EHR's version of each patient
        self.calls: list[tuple[str | None, int]] = []  # (patient, version read at the start)
        self.active = self.peak = 0
        self.fail: set[str | None] = set()

    async def __call__(self, settings: webhook.NotifySettings, patient: str | None) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.calls.append((patient, self.writes[patient]))
        gate = self.gates.get(len(self.calls) - 1, self.gate)
        async with self._started:
            self._started.notify_all()
        try:
            await gate.wait()
            if patient in self.fail:
                raise RuntimeError(f"boom for {patient}")
        finally:
            self.active -= 1

    async def started(self, runs: int = 1) -> None:
        """Until ``runs`` runs have begun."""
        async with self._started:
            await self._started.wait_for(lambda: len(self.calls) >= runs)

    @property
    def patients(self) -> list[str | None]:
        return [patient for patient, _ in self.calls]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    runs = FakeRuns()
    monkeypatch.setattr(webhook, "_run", runs)
    return runs


@pytest.fixture(autouse=True)
def no_ids_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    for record in caplog.records:
        assert "Patient/" not in record.getMessage(), record.getMessage()


def _app(**settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(webhook.router, prefix="/fhir-notify")
    # insecure: these tests are about the queue, not the secret (tests/sync/test_webhook.py)
    config = webhook.NotifySettings(server="http://fhir.test/fhir", insecure=True, **settings)
    app.dependency_overrides[webhook.get_notify_settings] = lambda: config
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(concurrency=4)),
                                 base_url="http://app.test") as client:
        yield client


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test")


async def _notify(http: httpx.AsyncClient, patient: str | None, fake: FakeRuns | None = None
                  ) -> None:
    """One write on the EHR (if a fake is given) and its notification; the 200 comes at once."""
    if fake is not None:
        fake.writes[patient] += 1
    if patient is None:
        response = await http.post("/fhir-notify")
    else:
        qr = {"resourceType": "QuestionnaireResponse", "id": "q",
              "subject": {"reference": patient}}
        response = await http.put("/fhir-notify/QuestionnaireResponse/q", json=qr)
    assert response.status_code == 200


def _queue(http: httpx.AsyncClient) -> SyncQueue:
    app = http._transport.app  # type: ignore[attr-defined]
    queue = app.state.fhir_notify_queue
    assert isinstance(queue, SyncQueue)
    return queue


async def _status(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/fhir-notify/status")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_a_hundred_notifications_for_one_patient_run_at_most_twice(
    http: httpx.AsyncClient, fake: FakeRuns
) -> None:
    await _notify(http, "Patient/p1", fake)
    await fake.started()  # the first run is in flight (it read write 1)
    for _ in range(99):
        await _notify(http, "Patient/p1", fake)  # writes 2..100 arrive mid-run
    status = await _status(http)
    assert (status["inFlight"], status["queued"], status["coalesced"]) == (1, 1, 98)
    fake.gate.set()
    await _queue(http).join()
    assert fake.calls == [("Patient/p1", 1), ("Patient/p1", 100)]  # the follow-up read the last
    assert (await _status(http))["completed"] == 2


async def test_a_write_during_the_follow_up_runs_once_more(
    http: httpx.AsyncClient, fake: FakeRuns
) -> None:
    first, follow_up = fake.gates[0], fake.gates[1] = asyncio.Event(), asyncio.Event()
    fake.gate.set()  # any later run
    await _notify(http, "Patient/p1", fake)
    await fake.started(1)
    await _notify(http, "Patient/p1", fake)  # write 2, mid-run
    first.set()
    await fake.started(2)  # the follow-up began (it read write 2)
    await _notify(http, "Patient/p1", fake)  # write 3, while the follow-up is in flight
    follow_up.set()
    await _queue(http).join()
    assert fake.calls == [("Patient/p1", 1), ("Patient/p1", 2), ("Patient/p1", 3)]


async def test_empty_pings_coalesce_into_one_full_run_plus_one(
    http: httpx.AsyncClient, fake: FakeRuns
) -> None:
    await _notify(http, None)
    await fake.started()
    for _ in range(20):
        await _notify(http, None)
    fake.gate.set()
    await _queue(http).join()
    assert fake.patients == [None, None]


async def test_two_hundred_patients_never_more_than_four_at_once(
    http: httpx.AsyncClient, fake: FakeRuns
) -> None:
    patients = [f"Patient/p{i}" for i in range(200)]
    for patient in patients:
        await _notify(http, patient)
    status = await _status(http)
    assert (status["inFlight"], status["queued"], status["limit"]) == (4, 196, 4)
    assert fake.active == 4
    fake.gate.set()
    await _queue(http).join()
    assert fake.peak == 4
    assert sorted(fake.patients) == sorted(patients)  # every one, once
    assert (await _status(http))["completed"] == 200


async def test_overflow_collapses_into_one_full_run(fake: FakeRuns,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    async with _client(_app(concurrency=1, queue_max=5)) as http:
        await _notify(http, "Patient/p0")
        await fake.started()
        for i in range(1, 6):
            await _notify(http, f"Patient/p{i}")  # 5 waiting: the maximum
        assert (await _status(http))["queued"] == 5
        await _notify(http, "Patient/p6")  # one more: collapse
        status = await _status(http)
        assert (status["queued"], status["fullRunQueued"], status["collapsed"]) == (1, True, 1)
        await _notify(http, "Patient/p7")  # the queued full run covers it
        await _notify(http, "Patient/p1")
        assert (await _status(http))["queued"] == 1
        fake.gate.set()
        await _queue(http).join()
    assert fake.patients == ["Patient/p0", None]
    assert "collapsed into one full sync" in caplog.text


async def test_overflow_during_a_full_run_queues_a_follow_up_full_run(fake: FakeRuns) -> None:
    async with _client(_app(concurrency=1, queue_max=2)) as http:
        await _notify(http, None)
        await fake.started()  # this full run may have read before the writes below
        for i in range(3):
            await _notify(http, f"Patient/p{i}")
        status = await _status(http)
        assert (status["queued"], status["fullRunQueued"], status["collapsed"]) == (1, True, 1)
        fake.gate.set()
        await _queue(http).join()
    assert fake.patients == [None, None]


async def test_a_failing_run_is_counted_and_the_others_continue(
    http: httpx.AsyncClient, fake: FakeRuns, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail = {"Patient/p2"}
    fake.gate.set()
    for i in range(1, 6):
        await _notify(http, f"Patient/p{i}")
    await _queue(http).join()
    status = await _status(http)
    assert (status["completed"], status["failed"]) == (4, 1)
    assert "failed: RuntimeError" in caplog.text  # the type, not the message (it has an id)
    fake.fail = set()
    await _notify(http, "Patient/p2")  # the patient's next notification runs again
    await _queue(http).join()
    assert fake.patients.count("Patient/p2") == 2
    status = await _status(http)
    assert (status["completed"], status["failed"]) == (5, 1)


async def test_a_failed_run_report_counts_as_failed(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failed_sync(config: Any) -> RunReport:
        return RunReport("r1", config.server, False, None, status="failed")

    monkeypatch.setattr(webhook, "run_sync", failed_sync)  # the real _run around it
    await _notify(http, "Patient/p1")
    await _queue(http).join()
    status = await _status(http)
    assert (status["completed"], status["failed"]) == (0, 1)


async def test_shutdown_logs_what_was_not_done(
    fake: FakeRuns, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(concurrency=1, shutdown_grace=0)
    async with app.router.lifespan_context(app), _client(app) as http:  # the app's lifespan
        await _notify(http, "Patient/p0")
        await fake.started()
        await _notify(http, "Patient/p1")
        await _notify(http, "Patient/p2")
        await _notify(http, None)
        queue = _queue(http)
    # leaving the lifespan closed the queue: the run in flight was cancelled after 0 s
    status = queue.status()
    assert status.closed and status.in_flight == 0 and fake.active == 0
    assert "2 patient runs and 1 full run not started, 1 runs cancelled" in caplog.text
    assert "next full sync" in caplog.text


async def test_shutdown_lets_runs_in_flight_finish_within_the_grace(fake: FakeRuns) -> None:
    app = _app(concurrency=2, shutdown_grace=30)
    async with app.router.lifespan_context(app), _client(app) as http:
        await _notify(http, "Patient/p0")
        await fake.started()
        queue = _queue(http)
        asyncio.get_running_loop().call_soon(fake.gate.set)  # finishes during the grace
    assert queue.status().completed == 1 and queue.status().failed == 0
