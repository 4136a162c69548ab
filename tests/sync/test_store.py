"""The operational store's contract, on SQLite and on PostgreSQL (``store_url``, conftest.py).

Watermarks move forward only; the journal and the audit round-trip; state survives reopening.
Concurrency: test_store_concurrency.py; PostgreSQL specifics: test_store_postgres.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bhi_fhir.store import AuditRow, Store, default_state_url

SERVER = "http://127.0.0.1:8080/fhir"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    yield store
    store.close()


def test_watermark_starts_empty_and_only_moves_forward(store: Store) -> None:
    assert store.watermark(SERVER) is None
    assert store.advance_watermark(SERVER, "2026-11-01T10:00:00Z", run_id=None) == (
        "2026-11-01T10:00:00Z"
    )
    # an earlier instant (another worker finishing late) does not move it back
    assert store.advance_watermark(SERVER, "2026-11-01T09:00:00+00:00", run_id=None) == (
        "2026-11-01T10:00:00Z"
    )
    store.advance_watermark(SERVER, "2026-11-02T00:00:00.123+00:00", run_id="r")
    assert store.watermark(SERVER) == "2026-11-02T00:00:00.123+00:00"
    assert store.watermark("http://other/fhir") is None
    store.reset_watermark(SERVER)
    assert store.watermark(SERVER) is None


def test_run_journal_and_audit(store: Store) -> None:
    run_id = store.start_run(SERVER, since="2026-11-01T00:00:00Z")
    assert store.run(run_id).status == "running"
    n = store.record_writes(
        run_id,
        SERVER,
        [AuditRow("engage", "engage:QuestionnaireResponse/1/_history/1", "create", "created",
                  "Task/9/_history/1")],
    )
    assert n == 1
    store.finish_run(run_id, status="ok", counts={"created": 1}, errors=[], request_count=7,
                     watermark="2026-11-02T00:00:00Z")
    record = store.run(run_id)
    assert (record.status, record.counts, record.request_count) == ("ok", {"created": 1}, 7)
    assert record.finished_at is not None
    assert [w.location for w in store.writes(run_id)] == ["Task/9/_history/1"]
    assert [r.id for r in store.runs(SERVER)] == [run_id]


def test_reopening_keeps_state(store_url: str) -> None:
    first = Store.open(store_url)
    first.advance_watermark(SERVER, "2026-11-01T10:00:00Z", run_id=None)
    first.close()
    again = Store.open(store_url)  # the schema is there already: create_all is a no-op
    assert again.watermark(SERVER) == "2026-11-01T10:00:00Z"
    again.close()


def test_default_url_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BHI_STATE_URL", "postgresql+psycopg://u@h/db")
    assert default_state_url() == "postgresql+psycopg://u@h/db"
    monkeypatch.delenv("BHI_STATE_URL")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_url() == f"sqlite:///{tmp_path}/bhi-fhir/state.db"


def test_held_patients_back_off_and_are_released(store: Store) -> None:
    assert store.due_patients(SERVER) == [] and store.pending() == []
    first = store.hold_patient(SERVER, "Patient/1", cause="refused",
                               reason="Unprocessable 422: error [invariant] Task.for", run_id="r1")
    assert first.attempts == 1
    assert first.next_attempt_at - first.last_failed_at == timedelta(minutes=5)
    assert store.due_patients(SERVER) == []  # not before the backoff
    again = store.hold_patient(SERVER, "Patient/1", cause="transient", reason="RetryableError 503",
                               run_id="r2")
    assert (again.attempts, again.cause, again.run_id) == (2, "transient", "r2")
    assert again.next_attempt_at - again.last_failed_at == timedelta(minutes=10)
    for _ in range(12):  # the backoff stops growing at a day
        last = store.hold_patient(SERVER, "Patient/1", cause="refused", reason="x", run_id=None)
    assert last.next_attempt_at - last.last_failed_at == timedelta(hours=24)
    store.hold_patient("http://other/fhir", "Patient/1", cause="refused", reason="x", run_id=None)
    assert [p.patient for p in store.pending(SERVER)] == ["Patient/1"]
    assert store.release_patients(SERVER, ["Patient/1", "Patient/2"]) == 1
    assert store.pending(SERVER) == [] and len(store.pending()) == 1


def test_stale_running_rows_are_marked_abandoned(store: Store) -> None:
    old = store.start_run(SERVER)
    assert store.mark_stale_runs(timedelta(hours=1)) == 0  # just started: still running
    assert store.mark_stale_runs(timedelta(0), server="http://other/fhir") == 0
    assert store.mark_stale_runs(timedelta(0), server=SERVER) == 1
    record = store.run(old)
    assert record is not None and record.status == "abandoned" and record.finished_at
