"""Several workers on one operational store at once, on SQLite and on PostgreSQL.

Each worker has its own ``Store`` (its own engine and connections), like separate sync
processes; one test uses real processes. Workers are released together by a barrier so their
transactions overlap. The contract: no IntegrityError or lost update, the watermark ends at
the maximum and is never seen moving backwards, and no journal or audit row goes missing.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bhi_fhir.store import AuditRow, Store
from bhi_fhir.store import _store as store_module
from tests.pg_server import PgServer

SERVER = "http://127.0.0.1:8080/fhir"
WORKERS = 8
BASE = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _instant(seconds: int, *, style: int = 0) -> str:
    """Same instant, the spellings servers use: Z, +00:00, with milliseconds."""
    at = BASE + timedelta(seconds=seconds)
    return [at.strftime("%Y-%m-%dT%H:%M:%SZ"), at.isoformat(),
            at.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")][style % 3]


def _key(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def stores(store_url: str) -> Iterator[list[Store]]:
    opened = [Store.open(store_url) for _ in range(WORKERS)]
    yield opened
    for store in opened:
        store.close()


def _together(stores: list[Store], work: Callable[[int, Store], object]) -> list[object]:
    """Run ``work(i, store_i)`` on every store at once; re-raise the first failure."""
    barrier = threading.Barrier(len(stores))

    def one(i: int) -> object:
        barrier.wait(timeout=30)
        return work(i, stores[i])

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(one, range(len(stores))))


def test_first_advances_race_from_no_row(stores: list[Store]) -> None:
    for round_ in range(12):  # a fresh stream each round: every round starts with no row
        stream = f"QuestionnaireResponse-{round_}"
        values = [_instant(random.randrange(10_000), style=i) for i in range(WORKERS)]

        def advance(i: int, store: Store, stream: str = stream, values: list[str] = values) -> str:
            return store.advance_watermark(SERVER, values[i], stream=stream, run_id=f"run-{i}")

        results = _together(stores, advance)
        for value, result in zip(values, results, strict=True):
            assert isinstance(result, str)
            assert _key(result) >= _key(value)  # the result is never behind what we asked for
        final = stores[0].watermark(SERVER, stream)
        assert final is not None
        assert _key(final) == max(_key(v) for v in values)


def test_watermark_never_moves_backwards_under_contention(stores: list[Store]) -> None:
    stores[0].advance_watermark(SERVER, _instant(0), run_id=None)
    per_worker = 15
    asked: list[list[int]] = [random.sample(range(1, 5_000), per_worker) for _ in stores]
    seen: list[datetime | None] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            value = stores[0].watermark(SERVER)
            seen.append(_key(value) if value is not None else None)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        def advance_many(i: int, store: Store) -> None:
            for n, seconds in enumerate(asked[i]):
                result = store.advance_watermark(SERVER, _instant(seconds, style=n), run_id=None)
                assert _key(result) >= _key(_instant(seconds))

        _together(stores, advance_many)
    finally:
        done.set()
        watcher.join()
    final = stores[0].watermark(SERVER)
    assert final is not None
    assert _key(final) == BASE + timedelta(seconds=max(max(a) for a in asked))
    assert seen and None not in seen
    assert seen == sorted(seen), "a reader saw the watermark move backwards"  # type: ignore[type-var]


def _advance_in_process(url: str, plan: list[int], barrier: Any, results: Any) -> None:
    store = Store.open(url)
    try:
        for round_, seconds in enumerate(plan):  # a fresh stream, so no row, every round
            barrier.wait(timeout=30)
            results.put((round_, store.advance_watermark(SERVER, _instant(seconds, style=round_),
                                                         stream=f"procs-{round_}", run_id=None)))
    finally:
        store.close()


def test_processes_advance_the_same_watermark_from_no_row(store_url: str) -> None:
    Store.open(store_url).close()  # schema first, so the processes race on the rows only
    context = multiprocessing.get_context("fork")  # fast; each child opens its own engine
    rounds, procs = 6, 4
    plans = [random.sample(range(10_000), rounds) for _ in range(procs)]
    barrier, results = context.Barrier(procs), context.Queue()
    workers = [context.Process(target=_advance_in_process,
                               args=(store_url, plan, barrier, results)) for plan in plans]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * procs, "a worker process failed"
    got = [results.get(timeout=5) for _ in range(rounds * procs)]
    assert len(got) == rounds * procs
    store = Store.open(store_url)
    try:
        for round_ in range(rounds):
            final = store.watermark(SERVER, f"procs-{round_}")
            assert final is not None
            assert _key(final) == BASE + timedelta(seconds=max(p[round_] for p in plans))
    finally:
        store.close()


@pytest.mark.postgres
def test_generic_dialect_path_also_survives_the_race(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dialects without ON CONFLICT claim the row in a savepoint; checked on PostgreSQL."""
    monkeypatch.setattr(store_module, "_ON_CONFLICT_INSERTS", {})
    url = pg_server.create_database()
    opened = [Store.open(url) for _ in range(WORKERS)]
    try:
        test_first_advances_race_from_no_row(opened)
    finally:
        for store in opened:
            store.close()


def test_concurrent_runs_and_audits_lose_nothing(stores: list[Store]) -> None:
    writes_per_run = 25

    def one_run(i: int, store: Store) -> str:
        run_id = store.start_run(SERVER, since=_instant(i))
        for batch in range(5):
            rows = [AuditRow("engage", f"engage:QuestionnaireResponse/{i}-{batch}-{k}/_history/1",
                             "create", "created", f"Task/{i}-{batch}-{k}/_history/1")
                    for k in range(writes_per_run // 5)]
            assert store.record_writes(run_id, SERVER, rows) == len(rows)
        store.finish_run(run_id, status="ok", counts={"created": writes_per_run, "worker": i},
                         errors=[], request_count=i, watermark=_instant(i))
        return run_id

    run_ids = _together(stores, one_run)
    assert len(set(run_ids)) == WORKERS
    journal = {r.id: r for r in stores[0].runs(SERVER, limit=100)}
    assert set(journal) == set(run_ids)
    for i, run_id in enumerate(run_ids):
        assert isinstance(run_id, str)
        record = journal[run_id]
        assert (record.status, record.request_count, record.counts["worker"]) == ("ok", i, i)
        writes = stores[0].writes(run_id)
        assert len(writes) == writes_per_run
        assert {w.identifier.split("/")[1].split("-")[0] for w in writes} == {str(i)}
