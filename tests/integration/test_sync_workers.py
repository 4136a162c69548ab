"""Scale-out on the real HAPI and a real PostgreSQL: three ``bhi-fhir sync --worker``
processes split one population, one of them SIGKILLed mid-run.

Worker A starts alone; once it has finished some patients and holds claims, B and C join the
batch, and A is killed while holding claims. B and C take A's claims over when the lease
(4 s here) expires. Afterwards, on the server: every identifier a dry run plans, exactly once
(zero duplicates, zero missing); in the store's work queue: every patient one item, finished
``done``, claimed once — except A's unfinished claims, claimed exactly twice and finished by B
or C —; the reports of B and C plus what A finished account for every patient once; the
watermark moved; a further worker run writes nothing.

In the PostgreSQL tier (``postgres`` marker, tier property) as well as the HAPI tier: in CI
a missing PostgreSQL fails it (``BHI_REQUIRE_PG=1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bhi_fhir.store import Store
from bhi_fhir.store.models import WorkItem
from bhi_fhir.store.work import WorkQueue
from bhi_fhir.sync import run_sync
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.test_sync import (
    _delete_case,  # noqa: F401  (autouse fixture: deletes this case's resources)
    assert_complete,
    config,
    planned_creates,
    seed_clinic,
)
from tests.pg_server import PgServer, running_pg_server

pytestmark = pytest.mark.postgres

PATIENTS = int(os.environ.get("BHI_WORKERS_PATIENTS", "150"))
LEASE_S = 4
_CLI = Path(sys.executable).parent / "bhi-fhir"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    with running_pg_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _postgres_tier(record_property: Callable[[str, object], None]) -> None:
    # .ci/run checks that every test of the postgres tier ran, none skipped
    record_property("tier", "postgres")


def _worker(base: str, run_tag: RunTag, case_id: str, state_url: str) -> list[str]:
    return [
        str(_CLI), "sync", "--server", base, "--today", "2026-11-26", "--state-url", state_url,
        "--where", f"_tag={CASE_SYSTEM}|{case_id}",
        "--tag", f"{TAG_SYSTEM}|{run_tag.code}", "--tag", f"{CASE_SYSTEM}|{case_id}",
        "--format", "json", "--worker", "--lease", str(LEASE_S), "--group-size", "5",
        "--workers", "2",
    ]  # fmt: skip


def _by_worker(store: Store, state: str) -> Counter[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(WorkItem.worker, func.count()).where(WorkItem.state == state)
            .group_by(WorkItem.worker))
        return Counter({str(w): int(n) for w, n in rows})


async def _wait(check: Callable[[], bool], what: str, timeout: float = 300,
                required: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            assert not required, f"timed out waiting for {what}"
            return
        await asyncio.sleep(0.1)


async def test_three_workers_one_killed_split_the_population_exactly_once(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path, pg_server: PgServer
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, PATIENTS)
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    expected = planned_creates(dry)
    url = pg_server.create_database()
    store = Store.open(url)
    command = _worker(fhir_base_url, run_tag, case_id, url)
    out = [tmp_path / f"worker-{n}.json" for n in "abc"]
    try:
        with out[0].open("w") as sink:
            a = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL)
        # A alone until it has finished some patients (and so holds the batch's other claims)
        await _wait(lambda: sum(_by_worker(store, "done").values()) >= 10, "worker A's work")
        (a_run,) = _by_worker(store, "done")
        others = []
        for path in out[1:]:
            with path.open("w") as sink:
                others.append(subprocess.Popen(command, stdout=sink,
                                               stderr=subprocess.DEVNULL))
        # B and C start beside A, and A is killed the next moment it holds claims: A packs
        # its groups' writes while reading the next, so waiting for B or C to claim first let
        # A finish the whole batch. Whether B and C have claimed by then or join A's batch
        # after it died, they must take over A's claims once its lease expires.
        await _wait(lambda: _by_worker(store, "claimed")[a_run] > 0, "A holding a claim")
        a.send_signal(signal.SIGKILL)
        assert a.wait(timeout=30) == -signal.SIGKILL
        orphaned = {i.patient for i in WorkQueue(store, fhir_base_url).items(_batch(store))
                    if i.state == "claimed" and i.worker == a_run}
        assert orphaned, "A was killed holding no claim"
        for process in others:
            assert process.wait(timeout=600) in (0, 1)

        reports = [json.loads(path.read_text()) for path in out[1:]]
        assert all(r["status"] == "ok" for r in reports), reports
        items = WorkQueue(store, fhir_base_url).items(_batch(store))
        patients = {d.patient for d in dry.diffs}
        assert len(patients) == dry.patients == PATIENTS
        assert {i.patient for i in items} == patients and len(items) == len(patients)
        assert {i.state for i in items} == {"done"}
        # claimed twice: exactly A's unfinished claims, each taken over once
        assert {i.patient for i in items if i.claims == 2} == orphaned
        assert {i.claims for i in items} == {1, 2}
        assert all(i.worker != a_run for i in items if i.patient in orphaned)
        a_done = sum(1 for i in items if i.worker == a_run)
        assert a_done + sum(r["patients"] for r in reports) == len(patients)  # each once
        assert store.watermark(fhir_base_url.rstrip("/")) is not None
        found = assert_complete(fhir_base_url, case_id, expected)

        # the watermark moved past everything: one more worker run writes nothing
        again = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout)["written"].get("created", 0) == 0
    finally:
        for process in [locals().get("a"), *locals().get("others", [])]:
            if isinstance(process, subprocess.Popen) and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        store.close()
    print(f"\nworkers test: {len(patients)} patients, A killed holding {len(orphaned)} "
          f"(taken over), B+C {[r['patients'] for r in reports]}, A finished {a_done}; "
          f"{len(expected)} planned identifiers, {sum(found.values())} found, 0 duplicates, "
          "0 missing")


def _batch(store: Store) -> str:
    with store.engine.connect() as connection:
        (batch,) = connection.execute(select(WorkItem.batch_id).distinct()).one()
        return str(batch)
