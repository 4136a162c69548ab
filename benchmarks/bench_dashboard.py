"""The practice dashboard at 1,000 enrolled patients: kept episodes vs recomputing, side by side.

The enrolled records come from the synthetic clinic generator, copied with per-copy ids up to
the size (``bench_registry._enrolled_records``, the same 1,000 enrolled the registry benchmark
uses); their registry rows are computed once and stored in a SQLite read model, as sync / the
app would have stored them.

* ``kept episodes`` — a dashboard view once the app has seen the rows (smart_app/dashboard.py):
  ``stored_rows`` (one database read), every episode found in the in-memory cache with the
  row's read time, the metrics computed (``bhi_fhir.metrics.figures``) and the page rendered.
* ``one row changed`` — the same after sync refreshed one patient's row: that patient's
  record is read again and its episode recomputed.
* ``recompute`` — the baseline: every episode computed from the records on each view (what a
  view costs without the cache, and what ``bhi-fhir report`` does once per run). The records
  are handed over from memory, so this side leaves out the FHIR reads themselves
  (bench_registry measures those: about 3 s per 100 enrolled against HAPI) — the real
  baseline is slower still.

p95 and median over ``--views`` timed views after one untimed warm-up. The machine is shared:
the load average is printed beside the figures; compare the columns, measured in the same run.

    .venv/bin/python benchmarks/bench_dashboard.py --enrolled 1000

Measured 2026-11-30 (2 cores shared with seven other engineers' work, load average 19.6 before
and 22.2 after; 10 views per side, 3 recomputing; ``--base`` a HAPI 8.8.0 with a 1 GB heap,
100 enrolled seeded, scaled per enrolled patient as bench_registry does)::

                  side |    p95 s  median s | records read per view
         kept episodes |    0.229     0.209 | 0
       one row changed |    0.249     0.170 | 1
             recompute |    6.861     6.727 | 1,000
       from the server |    5.862     5.591 | 100 (measured; HAPI seeded in 36 s)
                scaled |   58.625    55.913 | 1,000 (x10, per enrolled patient)
    recompute / kept (median): 32x; registry rows computed once in 2.3 s

An earlier run at a load of ~11-19 without ``--base``: kept 0.255 s, one row changed 0.356 s,
recompute 13.7 s (median). The read time varies with the load; the ratio is the figure.

    .venv/bin/python benchmarks/bench_dashboard.py --enrolled 1000 \
        --base http://127.0.0.1:8098/fhir --server-enrolled 100

Prints a table. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_registry import (  # the 1,000 enrolled, and how HAPI is seeded
    CASE,
    GENERATED_PER_ENROLLED,
    PLAN,
    TODAY,
    TYPES,
    _enrolled_ids_of,
    _enrolled_records,
    _owner,
)
from bhi_fhir.fhir import FhirClient
from bhi_fhir.measures.report import MEASURES
from bhi_fhir.metrics.figures import episodes_of, figures, measure_titles, parse_period
from bhi_fhir.registry import compute_rows
from bhi_fhir.registry.model import enrollment_rule_of
from bhi_fhir.registry.reader import enrolled_ids, read_records
from bhi_fhir.store import Store
from bhi_fhir.store.registry import REGISTRY_BUILT, put_registry_rows
from smart_app.dashboard import EpisodeCache, dashboard_figures, stored_rows
from tests.sync.clinic import clinic, delete_tagged, seed, team

SERVER = "http://bench.invalid/fhir"
PERIOD_TEXT = "2026-Q4"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parents[1] / "smart_app" / "templates"),
    autoescape=True,
)


class MemorySource:
    """The records in memory, as the app's ClinicSource hands them over (no FHIR reads)."""

    def __init__(self, records: dict[str, list[dict[str, Any]]]) -> None:
        self.records = records
        self.read = 0

    async def patients_resources(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        self.read += len(ids)
        return {i: self.records[i] for i in ids if i in self.records}


def _render(result: Any) -> str:
    session = {"csrf_token": "x" * 43, "context": {"patient": None}, "demo": False}
    return TEMPLATES.get_template("dashboard.html").render(
        session=session, figures=result, metrics=[m.as_dict() for m in result.metrics],
        period_text=PERIOD_TEXT, period=result.period, today=TODAY.isoformat(),
        freshness={"mode": "store", "oldest": None}, quarters=[PERIOD_TEXT], demo=False,
        now=time.time(),
    )


async def from_server(base: str, enrolled: int, views: int) -> tuple[list[float], float]:
    """Seed HAPI with ``enrolled`` enrolled patients (tagged, deleted at the end); the p95 of
    recomputing everything from the server on each view: the enrollment search, the records
    (``read_records``), the rows, the episodes, the figures and the page."""
    code = f"bench-dashboard-{uuid.uuid4().hex[:8]}"
    resources = clinic(math.ceil(enrolled * GENERATED_PER_ENROLLED) + 10, f"{code}-",
                       (CASE, code))
    kept = _enrolled_ids_of(resources, enrolled)
    started = time.perf_counter()
    seed(base, [*team(), *(r for r in resources if _owner(r) in kept)])
    seed_s = time.perf_counter() - started
    period = parse_period(PERIOD_TEXT)
    measures = list(MEASURES.values())

    async def view() -> None:
        async with FhirClient(base, timeout=300, max_retries=2) as client:
            ids = await enrolled_ids(client, enrollment_rule_of(PLAN))
            records = await read_records(client, ids)
        rows = compute_rows(records, TODAY, PLAN)
        episodes = episodes_of(records, TODAY, PLAN, period, rows=rows, measures=measures)
        _render(figures(list(episodes.values()), TODAY, PLAN, period,
                        measure_titles=measure_titles(measures)))

    try:
        await view()  # warm-up, untimed
        samples = []
        for _ in range(views):
            started = time.perf_counter()
            await view()
            samples.append(time.perf_counter() - started)
    finally:
        delete_tagged(base, f"{CASE}|{code}", TYPES)
    return samples, seed_s


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrolled", type=int, default=1000)
    parser.add_argument("--views", type=int, default=10, help="timed views per side")
    parser.add_argument("--recompute-views", type=int, default=3,
                        help="timed views of the recomputing baseline (slow)")
    parser.add_argument("--base", default=None,
                        help="a HAPI FHIR base to also recompute from the server (seeded)")
    parser.add_argument("--server-enrolled", type=int, default=100,
                        help="enrolled patients seeded into --base (scaled to --enrolled)")
    args = parser.parse_args()
    period = parse_period(PERIOD_TEXT)
    load_before = os.getloadavg()

    records = _enrolled_records(args.enrolled, "dash-")
    started = time.perf_counter()
    rows = compute_rows(records, TODAY, PLAN)
    rows_s = time.perf_counter() - started
    source = MemorySource(records)

    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/state.db")
        put_registry_rows(store, SERVER, rows, day=TODAY.isoformat(),
                          read_at=datetime.now(UTC), source="build")
        store.advance_watermark(SERVER, datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                                stream=REGISTRY_BUILT, run_id=None)
        cache = EpisodeCache()
        key = (SERVER, period.label, TODAY.isoformat())

        async def view(kept: dict[str, Any] | None) -> Any:
            rows = stored_rows(store, SERVER)
            result = await dashboard_figures(rows, source, TODAY, PLAN, period,  # type: ignore[arg-type]
                                             kept)
            _render(result)
            return result

        async def timed(run: Any, views: int) -> list[float]:
            await run()  # warm-up, untimed (fills the cache for the kept side)
            out = []
            for _ in range(views):
                started = time.perf_counter()
                await run()
                out.append(time.perf_counter() - started)
            return out

        kept_samples = await timed(lambda: view(cache.get(key)), args.views)
        source.read = 0
        changed_samples: list[float] = []
        for n in range(args.views):
            patient = sorted(rows)[n % len(rows)]
            put_registry_rows(store, SERVER, {patient: rows[patient]}, day=TODAY.isoformat(),
                              read_at=datetime.now(UTC), source="sync")
            started = time.perf_counter()
            await view(cache.get(key))
            changed_samples.append(time.perf_counter() - started)
        changed_reads = source.read / args.views
        recompute_samples = await timed(lambda: view(None), args.recompute_views)
        store.close()

    server: tuple[list[float], float] | None = None
    if args.base:
        server = await from_server(args.base, args.server_enrolled, args.recompute_views)
    load_after = os.getloadavg()
    print(f"dashboard, {args.enrolled:,} enrolled patients, period {PERIOD_TEXT}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} cores, shared)")
    print(f"{'side':>18} | {'p95 s':>8} {'median s':>9} | records read per view")
    for name, samples, reads in (
        ("kept episodes", kept_samples, 0),
        ("one row changed", changed_samples, changed_reads),
        ("recompute", recompute_samples, args.enrolled),
    ):
        print(f"{name:>18} | {p95(samples):>8.3f} {statistics.median(samples):>9.3f} | "
              f"{reads:,.0f}")
    if server is not None:
        samples, seed_s = server
        scale = args.enrolled / args.server_enrolled
        print(f"{'from the server':>18} | {p95(samples):>8.3f} {statistics.median(samples):>9.3f}"
              f" | {args.server_enrolled:,} (measured; HAPI seeded in {seed_s:.0f} s)")
        print(f"{'  scaled':>18} | {p95(samples) * scale:>8.3f} "
              f"{statistics.median(samples) * scale:>9.3f} | {args.enrolled:,} (x{scale:g}, "
              "per enrolled patient)")
    ratio = statistics.median(recompute_samples) / statistics.median(kept_samples)
    print(f"recompute / kept (median): {ratio:.0f}x; registry rows computed once in "
          f"{rows_s:.1f} s (by sync / the app, not per view)")


if __name__ == "__main__":
    asyncio.run(main())
