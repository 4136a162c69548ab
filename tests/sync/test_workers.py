"""Scale-out workers: the shared work queue (bhi_fhir.store.work) on a real PostgreSQL, and
several ``run_sync(shared=True)`` workers splitting one run over a fake server.

What must hold: a patient is claimed by one worker at a time (SKIP LOCKED), a dead worker's
claim is taken over once its lease expires, enqueuing twice adds nothing, the batch closes
(and the watermark moves) only when every item is finished, never past a failed patient's
screens; SQLite is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir.errors import EXIT_CONFIG
from bhi_fhir.store import Store
from bhi_fhir.store.work import SharedStoreError, WorkQueue
from bhi_fhir.sync import SyncConfig, run_sync
from tests.pg_server import PgServer
from tests.sync.test_runner import BASE, FakeServer, _qr

_register()
LEASE = timedelta(seconds=30)


@pytest.fixture
def pg_store(pg_server: PgServer) -> Store:
    return Store.open(pg_server.create_database())


def test_sqlite_cannot_be_shared(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    with pytest.raises(SharedStoreError, match="PostgreSQL"):
        WorkQueue(store, BASE)
    result = CliRunner().invoke(app, [
        "sync", "--server", BASE, "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
        "--worker"])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "--worker needs a PostgreSQL --state-url" in result.stderr


@pytest.mark.postgres
def test_claims_never_overlap_and_enqueue_is_idempotent(pg_store: Store) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    assert queue.join() == batch  # a second worker joins the open batch
    patients = {f"Patient/p{i}": None for i in range(50)}
    assert queue.enqueue(batch, patients) == 50
    assert queue.enqueue(batch, patients) == 0
    a = queue.claim(batch, "worker-a", 20, LEASE)
    b = queue.claim(batch, "worker-b", 20, LEASE)
    c = queue.claim(batch, "worker-c", 20, LEASE)
    assert (len(a), len(b), len(c)) == (20, 20, 10)
    assert not set(a) & set(b) and not set(b) & set(c) and not set(a) & set(c)
    assert a == [f"Patient/p{i}" for i in range(20)]  # in the order found
    assert queue.claim(batch, "worker-d", 20, LEASE) == []


@pytest.mark.postgres
async def test_concurrent_claims_from_many_connections_split_the_items(pg_store: Store) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    queue.enqueue(batch, {f"Patient/p{i}": None for i in range(400)})

    def drain(worker: str) -> list[str]:
        got: list[str] = []
        while part := queue.claim(batch, worker, 7, LEASE):
            got += part
        return got

    parts = await asyncio.gather(*(asyncio.to_thread(drain, f"w{i}") for i in range(6)))
    claimed = Counter(p for part in parts for p in part)
    assert len(claimed) == 400 and set(claimed.values()) == {1}


@pytest.mark.postgres
def test_an_expired_lease_is_taken_over(pg_store: Store) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    queue.enqueue(batch, {"Patient/a": None, "Patient/b": None})
    assert queue.claim(batch, "dead", 1, timedelta(seconds=0.2)) == ["Patient/a"]
    assert queue.claim(batch, "alive", 5, LEASE) == ["Patient/b"]
    left, expires_in = queue.unfinished(batch)
    assert left == 2 and expires_in is not None and expires_in < 1
    time.sleep(0.3)
    assert queue.claim(batch, "alive", 5, LEASE) == ["Patient/a"]
    item = {i.patient: i for i in queue.items(batch.id)}["Patient/a"]
    assert (item.worker, item.claims) == ("alive", 2)


@pytest.mark.postgres
def test_a_renewed_lease_is_not_taken_over(pg_store: Store) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    queue.enqueue(batch, {"Patient/a": None})
    queue.claim(batch, "slow", 1, timedelta(seconds=0.3))
    assert queue.renew(batch, "slow", ["Patient/a"], LEASE) == 1
    time.sleep(0.4)
    assert queue.claim(batch, "other", 1, LEASE) == []


@pytest.mark.postgres
def test_the_batch_closes_when_every_item_is_finished_and_holds_below_failures(
    pg_store: Store,
) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    queue.enqueue(batch, {"Patient/a": "2026-11-26T10:00:00Z", "Patient/b": "2026-11-26T09:00:00Z",
                          "Patient/c": None})
    queue.claim(batch, "w1", 3, LEASE)
    queue.finish(batch, "w1", {"Patient/a": "done", "Patient/b": "failed"})
    assert queue.close(batch, "2026-11-26T11:00:00Z") is None  # Patient/c still claimed
    queue.finish(batch, "w1", {"Patient/c": "held"})
    # the earliest candidate offered, held below the failed patient's screens
    assert queue.close(batch, "2026-11-26T11:30:00Z") == "2026-11-26T09:00:00Z"
    assert queue.close(batch, "2026-11-26T11:30:00Z") is None  # closed once
    # the next worker opens a new batch from the stored watermark
    pg_store.advance_watermark(BASE, "2026-11-26T09:00:00Z", run_id=None)
    after = queue.join()
    assert after.id != batch.id and after.since == "2026-11-26T09:00:00Z"
    assert queue.items(batch.id) == []  # the closed batch's items are dropped


@pytest.mark.postgres
def test_given_back_items_are_claimed_again(pg_store: Store) -> None:
    queue = WorkQueue(pg_store, BASE)
    batch = queue.join()
    queue.enqueue(batch, {"Patient/a": None})
    queue.claim(batch, "stopped", 1, LEASE)
    queue.finish(batch, "stopped", {"Patient/a": "queued"})  # a run that stopped early
    assert queue.close(batch, None) is None
    assert queue.claim(batch, "next", 1, LEASE) == ["Patient/a"]


@pytest.mark.postgres
async def test_three_workers_split_one_run_and_one_closes_it(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    server = FakeServer(0)
    server.responses = [_qr(f"Patient/p{i}", f"qr{i}") for i in range(60)]

    def worker() -> SyncConfig:
        return SyncConfig(server=BASE, today=date(2026, 11, 26), state_url=url, shared=True,
                          group_size=4, workers=2, transport=httpx.MockTransport(server))

    reports = await asyncio.gather(*(run_sync(worker()) for _ in range(3)))
    assert all(r.status == "ok" for r in reports), [r.to_text() for r in reports]
    assert sum(r.patients for r in reports) == 60
    store = Store.open(url)
    try:
        queue = WorkQueue(store, BASE)
        batch = queue.batch()
        assert batch is not None and batch.status == "done"
        items = queue.items(batch.id)
        assert len(items) == 60 and {i.state for i in items} == {"done"}
        assert {i.claims for i in items} == {1}  # nobody's patient taken twice
        assert {i.worker for i in items} <= {r.run_id for r in reports}
        # no double work: every conditional create was sent once, by one worker
        sent = Counter(e["request"].get("ifNoneExist") for t in server.transactions
                       for e in t["entry"] if e["request"]["method"] == "POST")
        assert sent and max(sent.values()) == 1, sent.most_common(3)
        assert store.watermark(BASE) is not None
        moved = [r for r in reports if r.watermark is not None]
        assert moved, "the closing worker advanced the watermark"
    finally:
        store.close()
