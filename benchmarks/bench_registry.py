"""The registry page: the read model (rows kept in the store) vs today's live read, side by side.

Sizes are practices of 100, 1,000 and 10,000 patients with a tenth of them enrolled (10, 100 and
1,000 enrolled): only enrolled patients are in the registry, and only their records are read.

* ``read model`` — what ``GET /registry`` does with the store (smart_app/registry.py): one
  ``load_registry`` of the server's rows, the sort, and the page rendered. The store (SQLite by
  default, ``--state-url`` for PostgreSQL) is populated directly: rows computed by
  ``registry_row`` from the synthetic clinic's enrolled records (examples/generate_clinic.py),
  copied with per-copy ids up to the size, as sync/the app would have stored them.
* ``live`` — what the page did on every view before: the enrollment search, the enrolled
  patients' records (one batch Bundle per 50 patients, ``read_records``), ``registry_row`` per
  patient (``compute_rows``), the sort and the page rendered — against a real HAPI holding that
  many enrolled patients (seeded from the same generator, tagged, deleted at the end).
  Seeding 1,000 enrolled patients' records into HAPI is slow, so sizes above ``--live-max``
  are extrapolated from the largest measured size (seconds and requests per enrolled patient;
  requests from the paging arithmetic) and marked ``extrapolated``.

Both sides render the same template with the same rows. p95 over ``--views`` views after one
untimed warm-up view (the server's and Python's first-call costs).

    BHI_HAPI_PORT=8095 tools/hapi/start
    .venv/bin/python benchmarks/bench_registry.py --base http://127.0.0.1:8095/fhir

Measured 2026-11-30 (HAPI 8.8.0, 1 GB heap, 2 cores shared with other work at a load average
of ~22; 40 read-model views and 5 live views per size; the page's caseload table 100 rows)::

     patients enrolled |     read model p95 requests |           live p95 requests
          100       10 |    0.030 (0.011)        0 |     1.78 (0.72)        2   measured
        1,000      100 |    0.074 (0.034)        0 |     5.96 (2.95)        3   measured
       10,000    1,000 |    0.158 (0.117)        0 |    59.59 (29.52)      25   extrapolated

The same read model on PostgreSQL (``--state-url``, a throwaway cluster from
tests/pg_server.py, ``--live-max 0``): p95 0.020, 0.046 and 0.169 s. Computing the 1,000
enrolled rows took 2.7 s, paid once per change by sync or the app, not per view. Before the
table was paged, rendering all 1,000 rows made the 10,000 p95 0.83 s at a load of ~5 and 1.5 s
at ~30 (medians 0.19 and 0.29 s).

Prints a table. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bhi_fhir.fhir import FhirClient
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.registry import compute_rows, load_registry
from bhi_fhir.registry.model import enrollment_rule_of
from bhi_fhir.registry.reader import REGISTRY_PAGE, enrolled_ids, read_records
from bhi_fhir.registry.rows import enrolled_in
from bhi_fhir.store import Store
from bhi_fhir.store.registry import REGISTRY_BUILT, put_registry_rows
from tests.sync.clinic import clinic, delete_tagged, seed, team

CASE = "https://bhi-fhir.dev/test-case"
TODAY = date(2026, 11, 26)  # the clinic generator's today
PLAN = load_practice_plan(examples_dir() / "practice-plan.toml")
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parents[1] / "smart_app" / "templates"),
    autoescape=True,
)
SERVER = "http://bench.invalid/fhir"  # the read model's rows are keyed by this server
ENROLLED_SHARE = 10  # one patient in ten is enrolled
# Generated patients per enrolled one (examples/generate_clinic.py enrolls about a quarter).
GENERATED_PER_ENROLLED = 4.2
TYPES = ("Task", "CarePlan", "Encounter", "Consent", "QuestionnaireResponse", "Patient")


def _page(rows: list[dict[str, Any]], freshness: dict[str, Any]) -> str:
    """The registry page as smart_app/registry.py renders it."""
    from smart_app.registry import page_context

    session = {"csrf_token": "x" * 43, "context": {"patient": None}, "demo": False}
    return TEMPLATES.get_template("registry.html").render(
        session=session, **page_context(rows, None, "flags", 1),
        today=TODAY.isoformat(), fhir_requests=0, freshness=freshness, notice=None, demo=False,
        now=time.time(), url_for=lambda *a, **k: "",
    )


def _enrolled_records(enrolled: int, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """``enrolled`` enrolled patients' records from the generator (ids prefixed)."""
    resources = clinic(math.ceil(enrolled * GENERATED_PER_ENROLLED) + 10, prefix)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        if r["resourceType"] == "Patient":
            by_patient[r["id"]] = [r]
    for r in resources:
        ref = (r.get("subject") or r.get("patient") or r.get("for") or {}).get("reference", "")
        if r["resourceType"] != "Patient" and ref.removeprefix("Patient/") in by_patient:
            by_patient[ref.removeprefix("Patient/")].append(r)
    rule = enrollment_rule_of(PLAN)
    chosen = [p for p, rs in by_patient.items() if enrolled_in(rs, rule)][:enrolled]
    if len(chosen) < enrolled:
        raise SystemExit(f"the generator gave {len(chosen)} enrolled patients, not {enrolled}")
    return {p: by_patient[p] for p in chosen}


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def _timed(view: Callable[[], Awaitable[Any]], views: int) -> list[float]:
    await view()  # warm-up, untimed
    out = []
    for _ in range(views):
        started = time.perf_counter()
        await view()
        out.append(time.perf_counter() - started)
    return out


async def read_model(store: Store, patients: int, views: int) -> tuple[list[float], float]:
    """Populate the store with the size's rows; the p95 of the page read from it."""
    enrolled = patients // ENROLLED_SHARE
    records = _enrolled_records(enrolled, f"rm{patients}-")
    started = time.perf_counter()
    rows = compute_rows(records, TODAY, PLAN)
    compute_s = time.perf_counter() - started
    server = f"{SERVER}/{patients}"
    put_registry_rows(store, server, rows, day=TODAY.isoformat(), read_at=datetime.now(UTC),
                      source="build")
    store.advance_watermark(server, datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                            stream=REGISTRY_BUILT, run_id=None)

    async def view() -> None:
        registry = load_registry(store, server, TODAY)
        assert len(registry.rows) == enrolled
        _page(registry.rows, {"mode": "store", "built_at": registry.built_at,
                              "oldest": str(registry.oldest_read),
                              "newest": str(registry.newest_read),
                              "earlier_day": registry.earlier_day})

    return await _timed(view, views), compute_s


async def live(base: str, patients: int, views: int, code: str) -> tuple[list[float], float, int]:
    """Seed HAPI up to the size's enrolled patients; the live page's p95, requests per view."""
    enrolled = patients // ENROLLED_SHARE
    resources = clinic(math.ceil(enrolled * GENERATED_PER_ENROLLED) + 10, f"{code}-{patients}-",
                       (CASE, code))
    # Keep exactly the size's enrolled patients (and their records); the rest never enter the
    # registry and are not needed on the server.
    kept = _enrolled_ids_of(resources, enrolled)
    started = time.perf_counter()
    seed(base, [*team(), *(r for r in resources if _owner(r) in kept)])
    seed_s = time.perf_counter() - started
    requests: list[int] = []

    async def view() -> None:
        client = FhirClient(base, timeout=300, max_retries=2)
        try:
            ids = await enrolled_ids(client, enrollment_rule_of(PLAN))
            rows = compute_rows(await read_records(client, ids), TODAY, PLAN)
            _page(list(rows.values()), {"mode": "live"})
            requests.append(client.request_count)
        finally:
            await client.aclose()

    samples = await _timed(view, views)
    return samples, seed_s, requests[-1]


def _owner(resource: dict[str, Any]) -> str:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    ref = (resource.get("subject") or resource.get("patient") or resource.get("for") or {})
    return str(ref.get("reference", "")).removeprefix("Patient/")


def _enrolled_ids_of(resources: list[dict[str, Any]], enrolled: int) -> set[str]:
    rule = enrollment_rule_of(PLAN)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_patient.setdefault(_owner(r), []).append(r)
    chosen = []
    for patient, rs in by_patient.items():
        records = sorted(rs, key=lambda r: r["resourceType"] != "Patient")
        if records and records[0]["resourceType"] == "Patient" and enrolled_in(records, rule):
            chosen.append(patient)
    return set(chosen[:enrolled])


def live_requests(enrolled: int, careplans_per_page: int = 200) -> int:
    """Requests of one live view: the enrollment search's pages and one batch per 50 enrolled
    patients (next pages aside)."""
    return max(1, math.ceil(enrolled / careplans_per_page)) + math.ceil(enrolled / REGISTRY_PAGE)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8095/fhir")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--live-max", type=int, default=1000,
                        help="largest size measured live; larger ones are extrapolated")
    parser.add_argument("--views", type=int, default=20, help="timed views per read-model size")
    parser.add_argument("--live-views", type=int, default=5, help="timed live views per size")
    parser.add_argument("--state-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    code = f"bench-registry-{uuid.uuid4().hex[:8]}"

    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(args.state_url or f"sqlite:///{folder}/state.db")
        print(f"store: {store.engine.dialect.name}; live server: {args.base}")
        results: list[dict[str, Any]] = []
        measured: dict[str, Any] | None = None
        try:
            for patients in sizes:
                enrolled = patients // ENROLLED_SHARE
                samples, compute_s = await read_model(store, patients, args.views)
                row: dict[str, Any] = {"patients": patients, "enrolled": enrolled,
                                       "model_p95": p95(samples),
                                       "model_median": statistics.median(samples),
                                       "compute_s": compute_s}
                if patients <= args.live_max:
                    live_samples, seed_s, requests = await live(
                        args.base, patients, args.live_views, code)
                    row.update(live_p95=p95(live_samples),
                               live_median=statistics.median(live_samples),
                               live_requests=requests, live_note="measured",
                               seed_s=seed_s)
                    measured = row
                    # The next size's live data adds to the server: delete this size's first.
                    delete_tagged(args.base, f"{CASE}|{code}", TYPES)
                elif measured is not None:
                    scale = enrolled / measured["enrolled"]
                    row.update(live_p95=measured["live_p95"] * scale,
                               live_median=measured["live_median"] * scale,
                               live_requests=live_requests(enrolled),
                               live_note=f"extrapolated from {measured['patients']:,}")
                results.append(row)
                print(f"  {patients:,} patients done", flush=True)
        finally:
            delete_tagged(args.base, f"{CASE}|{code}", TYPES)
            store.close()

    print()
    print("registry page, p95 seconds per view (median in brackets); requests to the FHIR server")
    print(f"{'patients':>9} {'enrolled':>8} | {'read model p95':>18} {'requests':>8} | "
          f"{'live p95':>18} {'requests':>8} {'live':>24} | {'speed-up':>8}")
    for r in results:
        print(f"{r['patients']:>9,} {r['enrolled']:>8,} | "
              f"{r['model_p95']:>8.3f} ({r['model_median']:.3f}) {0:>8} | "
              f"{r.get('live_p95', float('nan')):>8.2f} ({r.get('live_median', float('nan')):.2f})"
              f" {r.get('live_requests', 0):>8} {r.get('live_note', ''):>24} | "
              f"{r.get('live_p95', float('nan')) / r['model_p95']:>7.0f}x")
    print()
    print("read model: rows computed once (registry_row) by sync / the app's writes / a build;")
    for r in results:
        print(f"  computing the {r['enrolled']:,} enrolled rows took {r['compute_s']:.2f} s "
              f"(once per change, not per view)"
              + (f"; seeding HAPI {r['seed_s']:.0f} s" if "seed_s" in r else ""))


if __name__ == "__main__":
    asyncio.run(main())
