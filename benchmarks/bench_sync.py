"""Sync vs a naive client vs HAPI ingesting prebuilt transaction Bundles, on the real server.

Copies of the same synthetic clinic (examples/generate_clinic.py, ids prefixed per copy,
>= 1,000 QuestionnaireResponses by default) are seeded; then, after an untimed warm-up in which
each contender runs once over a small copy (so none pays for the server's JIT warm-up), one
copy each, in this order:

* ``sync``     — ``run_sync``: paged search with includes, one batch read per group of
                 patients, transactions of <= 100 writes;
* ``naive``    — one request per resource, one after another (the issue's baseline): search
                 the changed responses, GET each patient and each context search per patient,
                 POST every output (conditional create; a resource referencing one created after
                 it is fixed by a PUT). ``--naive-concurrency 1,8`` adds a row for a naive
                 client working on 8 patients at once;
* ``prebuilt`` — the same output as ready-made transaction Bundles of the sync's sizes, 8 at
                 once (the sync's client allows 8 requests in flight), only the POSTs timed
                 (the server-bound limit);
* ``read, then prebuilt`` — the same, with its reads (the sync's searches and context batches,
                 at the same added latency) and its planning timed too, all before its first
                 write: what the sync's overlapping of reads, planning and writes is measured
                 against, since any client has to read before it writes;
* ``N worker(s)`` (``--workers 1,2,4``) — N ``sync --worker`` processes (``SyncConfig(shared=
                 True)``, same added latency) over one copy, sharing a throwaway PostgreSQL
                 (tests/pg_server.py); timed from the moment all N are started and imported
                 until the last ends; "claimed twice" counts patients two workers took.

    .venv/bin/python benchmarks/bench_sync.py [--patients 780] [--naive-concurrency 1,8 | 0]
                                              [--rtt-ms 0,20,200] [--workers 1,2,4]

``--rtt-ms`` adds that much latency to every request of every contender (one network round
trip; connections are reused), to show what loopback hides: an EHR's server is never 0.05 ms
away; a comma-separated list prints one table per latency and a summary of every ratio to
prebuilt. Sync and prebuilt run twice per table (sync, prebuilt, the workers, prebuilt, sync)
and their means are compared, so load that drifts during a table favours neither.
``--naive-concurrency 0`` leaves the naive client out (at 200 ms it takes about an hour at the
default size). A reduced run, a few minutes per latency on an idle machine::

    .venv/bin/python benchmarks/bench_sync.py --base http://127.0.0.1:8093/fhir --patients 120 \
        --warmup-patients 60 --rtt-ms 0,20,200 --workers 1,2,4 --naive-concurrency 0

``naive/prebuilt`` is the ceiling: no client that writes this output can beat the naive one by
more than that on this server, whatever it does with its requests.

Run it on a server with room for five clinic copies, e.g. ``BHI_HAPI_PORT=8091 BHI_HAPI_HEAP=4g
tools/hapi/start`` and ``--base http://127.0.0.1:8091/fhir``; at the default 1.5 GB heap the
in-memory database fills the old generation and garbage collection starts to dominate.

Measured 2026-11-26 (HAPI 8.8.0, default JIT, 4 GB heap, 2 cores, nothing else running; 780
patients, 1,059 responses, 12,466 writes per copy, every contender writing the same tagged
resources):

    sync                48.3 s     193 requests
    naive (serial)     149.3 s  19,523 requests     3.09x the sync's wall time, 101.2x requests
    naive (8 at once)   91.6 s  19,523 requests     1.90x
    prebuilt            34.5 s     139 requests     sync/prebuilt 1.40x

The ceiling naive (serial)/prebuilt was 4.32x: HAPI spends ~2.8 ms of its own per entry of a
transaction and ~7.6 ms per request of the naive client, so even ready-made Bundles cannot be
5x faster than the naive client on this server over loopback. With ``--rtt-ms 2`` (a same-
region network): sync 44.2 s, naive (serial) 194.6 s (4.40x), 8 at once 96.1 s (2.17x), prebuilt
36.1 s (sync/prebuilt 1.22x); the ceiling rose to 5.38x.

Measured 2026-11-30 08:00-08:12 on the machine alone (HAPI 8.8.0, 4 GB heap, 2 cores; the
server's garbage collected and its CPU quiet before each contender, see start_timing; earlier
tables in this file's history ran beside other engineers' work, load 5-22). The reduced run,
100 patients (136 responses, 1,608 writes, 18 transactions per copy), wall time / prebuilt; the
600-patient row (9,648 writes) is one run of 07:40 without workers:

    ms added  patients   sync  1 wkr  2 wkr  4 wkr  read, then prebuilt  prebuilt s
          20       100   1.19   1.21   1.46   1.40                1.24        2.93
         200       100   1.38   1.55   1.75   1.82                1.94        2.77
           0       100   1.69   1.61   1.64   1.97                1.74        2.45
          20       600   1.60                                     1.67       19.20

Run to run on the same idle machine the ratios still move by about 0.15 (the 20 ms sync: 1.31,
1.14, 1.19 in three tables of one hour).

The sync is as fast as or faster than a client that reads and plans first and then sends the
same ready-made Bundles (sync / "read, then prebuilt": 0.97, 0.71, 0.97; 0.96 at 600): the
overlapping works. What separates both from prebuilt is the reading itself: the searches a
correct sync has to make (the changed responses with their subjects, and per group of 25 the
patients' response history, BHI CarePlans, Tasks, ServiceRequests, Consents, contacts and
screening Observations, for treat-to-target and versioned, idempotent updates). Alone they cost
HAPI 0.6-0.7 s of CPU for 100 patients; in a run that writes right after them the server's CPU
rises by 1-3 s over prebuilt's (prebuilt's writes start from a collected, quiet server; the
sync's and read-then-prebuilt's start with what their reads left), at 600 patients from 35.0 s
(prebuilt) to 53.9 s (sync) and 54.8 s (read, then prebuilt). With both cores busy writing there
is no idle capacity to hide that in. The lead-in before the first write (metadata beside the
changed search, one context batch, planning the first group) is 0.6-0.9 s. One worker is the
single-process sync (the PostgreSQL queue costs nothing measurable); each further worker adds
its own reads (the CapabilityStatement, 1.5 MB from HAPI, and the changed responses) and its
process on the same two cores.

Client CPU of a warm 100-patient sync answered by a stub server: 0.31 s (planning on its own
thread; the journal written with one executemany per transaction).

Prints wall times, request counts and ratios. No assertions. Leaves data tagged
``https://bhi-fhir.dev/test-case|bench-<run>`` and deletes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bhi_fhir.fhir import Conflict, FhirClient
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sync import PatientPlan, SyncConfig, SyncWrite, plan_patient, run_sync
from bhi_fhir.sync.pipeline import write_chunks
from bhi_fhir.sync.runner import (
    DEFAULT_AGENT,
    _scrub,
    default_plan_path,
    load_protocol_files,
    tag_writes,
)
from bhi_fhir.sync.source import fetch_changed, fetch_contexts, fetch_server_info
from tests.sync.clinic import clinic, count, delete_tagged, seed, team

CASE = "https://bhi-fhir.dev/test-case"
TODAY = date(2026, 11, 26)
RTT = 0.0  # seconds added to every request (--rtt-ms)
PREBUILT_IN_FLIGHT = 8  # FhirClient's default max_concurrency, which bounds the sync too


class RoundTrip(httpx.AsyncBaseTransport):
    """The local transport plus ``RTT`` seconds per request: a server that is not on loopback."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        KINDS[request_kind(request)] += 1
        await asyncio.sleep(RTT)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


KINDS: Counter[str] = Counter()  # requests by kind since the last reset (request_kind)


def request_kind(request: httpx.Request) -> str:
    """``metadata``, ``search <Type>``, ``batch`` or ``transaction`` (a POST to the base)."""
    path = request.url.path.rstrip("/").rsplit("/fhir", 1)[-1].strip("/")
    if request.method == "POST" and not path:
        body = request.content
        return "batch" if b'"batch"' in body[:200] else "transaction"
    if path == "metadata":
        return "metadata"
    return f"{request.method} {path.split('/', 1)[0] or 'base'}"


SERVER_PID: int | None = None  # --hapi-pid: the server's CPU time is measured per contender
LAST_CPU: list[float] = [0.0]  # the server CPU seconds of the last timed contender


def server_cpu() -> float:
    """CPU seconds the server process has used so far (0 without --hapi-pid): what a
    contender cost the server, which load from other processes does not inflate."""
    if SERVER_PID is None:
        return 0.0
    fields = Path(f"/proc/{SERVER_PID}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_timing() -> tuple[float, float]:
    """The clock and the server's CPU at a contender's start. With --hapi-pid the server first
    collects its garbage (``jcmd <pid> GC.run``) and is waited for until it is quiet, so no
    contender pays for what the one before it (or the seeding of the copies) left the server
    to do: garbage, and its asynchronous work after each write (HAPI matches every written
    resource against the subscriptions on its own threads, ~2 ms each on this machine), JIT
    compiling."""
    if SERVER_PID is not None:
        if shutil.which("jcmd"):
            subprocess.run(["jcmd", str(SERVER_PID), "GC.run"], capture_output=True,
                           timeout=120, check=False)
        wait_until_quiet()
    return time.perf_counter(), server_cpu()


def wait_until_quiet(*, window_s: float = 0.5, share: float = 0.05, limit_s: float = 120) -> None:
    """Until the server used under ``share`` of one core over ``window_s`` (at most ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = server_cpu()
        time.sleep(window_s)
        if server_cpu() - before < share * window_s:
            return


def kinds_text(kinds: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


TYPES = ("Provenance", "Task", "ServiceRequest", "CarePlan", "Observation", "Encounter",
         "Consent", "QuestionnaireResponse", "Patient")


def seed_copy(base: str, patients: int, code: str) -> int:
    resources = clinic(patients, f"{code}-", (CASE, code))
    seed(base, resources)
    return count(resources, "QuestionnaireResponse")


async def plans_for(
    base: str, code: str, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[list[PatientPlan], int]:
    protocol, practice = load_protocol_files(), load_practice_plan(default_plan_path())
    async with FhirClient(base, transport=transport) as client:
        info = await fetch_server_info(client)
        changed = await fetch_changed(client, info, None, where=[("_tag", f"{CASE}|{code}")])
        patients = list(dict.fromkeys(q["subject"]["reference"] for q in changed.responses))
        plans = []
        for i in range(0, len(patients), 25):
            group = patients[i : i + 25]
            contexts = await fetch_contexts(client, info, group, changed)
            plans += [
                plan_patient(contexts[p], protocol=protocol, practice_plan=practice, today=TODAY,
                             recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
                for p in group
            ]
    return plans, len(patients)


async def naive(base: str, code: str, concurrency: int = 8) -> tuple[float, int, int]:
    """One request per resource; outputs as planned, each POSTed on its own."""
    protocol, practice = load_protocol_files(), load_practice_plan(default_plan_path())
    started = time.perf_counter()
    async with FhirClient(base, max_concurrency=8, transport=RoundTrip()) as client:
        responses = [
            qr async for qr in client.search(
                "QuestionnaireResponse", {"_tag": f"{CASE}|{code}", "_count": 200}
            )
        ]
        patients = list(dict.fromkeys(q["subject"]["reference"] for q in responses))
        gate = asyncio.Semaphore(concurrency)  # patients in flight (1 = strictly serial)

        async def one(patient: str) -> int:
            async with gate:
                return await naive_patient(client, patient, protocol, practice, code)

        written = sum(await asyncio.gather(*(one(p) for p in patients)))
        return time.perf_counter() - started, client.request_count, written


async def naive_patient(  # type: ignore[no-untyped-def]
    client: FhirClient, patient: str, protocol, practice, code: str
) -> int:
    """GET the patient, one search per context type, one conditional POST per output."""
    from bhi_fhir.sync.planning import PatientContext

    written = 0
    ctx = PatientContext(patient, await client.read(*patient.split("/")))
    for kind in ("CarePlan", "Task", "ServiceRequest", "Encounter", "Consent",
                 "Procedure", "QuestionnaireResponse", "Observation"):
        async for r in client.search(kind, {"patient": patient}):
            if kind == "QuestionnaireResponse":
                ctx.responses.append(r)
            elif kind == "Observation":
                ctx.observation_ids.update(
                    i["value"] for i in r.get("identifier", []) if "value" in i
                )
            else:
                ctx.resources.append(r)
    plan = plan_patient(ctx, protocol=protocol, practice_plan=practice, today=TODAY,
                        recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
    ids: dict[str, str] = {}
    later: list[tuple[Any, str]] = []  # written before what they reference: fixed after
    for write in tagged(plan.writes + plan.provenance, code):
        resource = _resolve(write.resource, ids)
        pending = set(_urns(resource))
        if pending:  # e.g. CarePlan.activity → a Task created after it
            _scrub(resource, pending)
        created = await client.create(resource, if_none_exist=write.if_none_exist)
        ids[write.full_url] = f"{created['resourceType']}/{created['id']}"
        if pending:
            later.append((write, str(created["id"])))
        written += 1
    for write, rid in later:
        await client.update({**_resolve(write.resource, ids), "id": rid})
    return written


def tagged(writes: list[SyncWrite], code: str) -> list[SyncWrite]:
    """The run tag on every output, as the sync's ``tags`` puts it: the same resources for all
    three contenders (a tag costs the server a row), and the cleanup finds them."""
    tag_writes(writes, [(CASE, code)])
    return writes


def _urns(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urns(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urns(v)]
    return [value] if isinstance(value, str) and value.startswith("urn:uuid:") else []


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


async def prebuilt(base: str, code: str, *, reads: bool = False) -> tuple[float, int, int]:
    """Ready-made Bundles, only their POSTs timed; ``reads``: its reads (at the same added
    latency) and planning timed too, all of them before the first write (a client that reads,
    plans, then writes, overlapping nothing)."""
    timing = start_timing() if reads else None
    plans, _ = await plans_for(base, code, RoundTrip() if reads else None)
    bundles = []  # the sync's own transaction sizes (whole patients, <= 100 writes)
    for chunk in write_chunks(plans, SyncConfig(server=base).max_entries):
        entries = [w.entry() for p in chunk for w in tagged(p.writes + p.provenance, code)]
        if entries:
            bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    async with FhirClient(base, transport=RoundTrip()) as client:
        started, cpu = timing or start_timing()
        # as many in flight as the sync's client allows (FhirClient max_concurrency): the
        # same concurrency on both sides
        gate = asyncio.Semaphore(PREBUILT_IN_FLIGHT)

        async def post(bundle: dict) -> None:  # type: ignore[type-arg]
            async with gate:
                for attempt in range(5):
                    try:
                        await client.transaction(bundle)
                        return
                    except Conflict:  # HAPI: two transactions created one tag at once;
                        # resent as the sync re-plans (every entry is conditional)
                        await asyncio.sleep(0.2 * (attempt + 1))
                await client.transaction(bundle)

        await asyncio.gather(*(post(b) for b in bundles))
        LAST_CPU[0] = server_cpu() - cpu
        return (time.perf_counter() - started, client.request_count,
                sum(len(b["entry"]) for b in bundles))


def cleanup(base: str, codes: list[str]) -> None:
    for code in codes:
        delete_tagged(base, f"{CASE}|{code}", TYPES)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=780)
    parser.add_argument("--base", default="http://127.0.0.1:8080/fhir")
    parser.add_argument("--naive-concurrency", default="1",
                        help="patients the naive client works on at once; a comma-separated "
                             "list gives one row each (the first is the reference); 0: no naive "
                             "row (at 200 ms it takes an hour at full size)")
    parser.add_argument("--warmup-patients", type=int, default=150)
    parser.add_argument("--rtt-ms", default="0",
                        help="latency added to every request (see above); a comma-separated "
                             "list, e.g. 0,20,200, gives one table each")
    parser.add_argument("--workers", default="",
                        help="comma-separated worker counts, e.g. 1,2,4: that many `sync "
                             "--worker` processes over one copy, on a throwaway PostgreSQL "
                             "(tests/pg_server.py)")
    parser.add_argument("--hapi-pid", type=int,
                        help="the server's process id: print the CPU seconds each contender "
                             "cost it (not inflated by other load on the machine)")
    parser.add_argument("--child-worker", nargs=3, metavar=("STATE_URL", "CODE", "RTT_MS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    global RTT, SERVER_PID
    SERVER_PID = args.hapi_pid
    if args.child_worker:
        await child_worker(args.base, *args.child_worker)
        return
    latencies = [float(x) for x in str(args.rtt_ms).split(",")]
    concurrency = [int(c) for c in str(args.naive_concurrency).split(",") if int(c) > 0]
    worker_counts = [int(n) for n in str(args.workers).split(",") if n]
    run = uuid.uuid4().hex[:6]
    seed(args.base, team())
    warm = [f"bench-{run}-warm-{name}" for name in ("sync", "pre", "naive")]
    for code in warm:
        seed_copy(args.base, args.warmup_patients, code)
    pg = contextlib.ExitStack()
    state_url = None
    if worker_counts:
        from tests.pg_server import running_pg_server

        state_url = pg.enter_context(running_pg_server()).create_database()
    tables = []
    try:
        # Warm-up, untimed: each contender once on a small copy, so that all meet a server
        # whose JIT has compiled their code paths (a cold HAPI is ~1.6x slower on this run).
        await timed_sync(args.base, warm[0], run)
        await prebuilt(args.base, warm[1])
        if concurrency:
            await naive(args.base, warm[2], 1)
        print("warm-up done", flush=True)
        for rtt_ms in latencies:
            RTT = rtt_ms / 1000
            tables.append(await one_latency(args, run, rtt_ms, concurrency, worker_counts,
                                            state_url))
    finally:
        cleanup(args.base, warm)
        pg.close()
    print("\n== summary: wall time / prebuilt (target <= 1.1)")
    print(f"{'ms added':>8} {'sync':>6} " + " ".join(f"{f'{n} wkr':>6}" for n in worker_counts)
          + f" {'read, then prebuilt':>20}")
    for rtt_ms, row in zip(latencies, tables, strict=True):
        print(f"{rtt_ms:8g} {row['sync']:6.2f} "
              + " ".join(f"{row[f'workers{n}']:6.2f}" for n in worker_counts)
              + f" {row['readpre']:20.2f}")


async def one_latency(  # type: ignore[no-untyped-def]
    args, run: str, rtt_ms: float, concurrency: list[int], worker_counts: list[int],
    state_url: str | None,
) -> dict[str, float]:
    """One table: every contender over its own copy at ``rtt_ms`` added per request."""
    tag = f"{rtt_ms:g}ms".replace(".", "_")
    codes = {name: f"bench-{run}-{tag}-{name}" for name in
             ("sync", "pre", "pre2", "sync2", "readpre", *(f"naive{c}" for c in concurrency),
              *(f"workers{n}" for n in worker_counts))}
    responses = [seed_copy(args.base, args.patients, code) for code in codes.values()]
    print(f"\nclinic: {args.patients} patients, {responses[0]} responses per copy; "
          f"{rtt_ms:g} ms added per request", flush=True)
    try:
        # sync, prebuilt, the workers, prebuilt, sync: each figure the mean of a run early and
        # a run late, so a machine whose load drifts during the table favours neither
        KINDS.clear()
        sync_wall, report = await timed_sync(args.base, codes["sync"], run)
        sync_kinds, cpus = Counter(KINDS), {"sync": [LAST_CPU[0]]}
        sync_writes = sum(report.written.values()) + sum(report.provenance.values())
        print(f"sync: {sync_wall:.1f}s, {report.requests} requests ({report.status}"
              f"{', ' + report.problems[0].message if report.problems else ''})", flush=True)
        KINDS.clear()
        p_wall, p_requests, p_writes = await prebuilt(args.base, codes["pre"])
        p_kinds = Counter(KINDS)
        cpus["prebuilt"] = [LAST_CPU[0]]
        print(f"prebuilt: {p_wall:.1f}s, {p_requests} requests", flush=True)
        naives = []
        for c in concurrency:
            naives.append((c, *await naive(args.base, codes[f"naive{c}"], c)))
            print(f"naive ({c} at once): {naives[-1][1]:.1f}s", flush=True)
        workers = []
        for n in worker_counts:
            assert state_url is not None
            workers.append((n, *await timed_workers(args.base, codes[f"workers{n}"], n,
                                                      state_url, rtt_ms)))
            cpus[f"{n} worker(s)"] = [LAST_CPU[0]]
            print(f"{n} workers: {workers[-1][1]:.1f}s", flush=True)
        r_wall = (await prebuilt(args.base, codes["readpre"], reads=True))[0]
        cpus["read, then prebuilt"] = [LAST_CPU[0]]
        print(f"read, then prebuilt: {r_wall:.1f}s", flush=True)
        p_wall2 = (await prebuilt(args.base, codes["pre2"]))[0]
        cpus["prebuilt"].append(LAST_CPU[0])
        print(f"prebuilt: {p_wall2:.1f}s", flush=True)
        sync_wall2 = (await timed_sync(args.base, codes["sync2"], run))[0]
        cpus["sync"].append(LAST_CPU[0])
        print(f"sync: {sync_wall2:.1f}s", flush=True)
        p_wall, sync_wall = (p_wall + p_wall2) / 2, (sync_wall + sync_wall2) / 2
        print(f"\n{rtt_ms:g} ms added per request, {args.patients} patients (sync, prebuilt: "
              "the mean of two runs, one before the others and one after)")
        print(f"{'':18} {'wall s':>8} {'requests':>9} {'writes':>7} {'/prebuilt':>9}")
        print(f"{'sync':18} {sync_wall:8.2f} {report.requests:9d} {sync_writes:7d} "
              f"{sync_wall / p_wall:9.2f}   ({report.status}, {len(report.errors)} errors)")
        for n, w_wall, w_requests, w_writes, w_patients, w_dup in workers:
            print(f"{f'{n} worker(s)':18} {w_wall:8.2f} {w_requests:9d} {w_writes:7d} "
                  f"{w_wall / p_wall:9.2f}   ({w_patients} patients, {w_dup} claimed twice)")
        for c, n_wall, n_requests, n_writes in naives:
            label = "naive (serial)" if c == 1 else f"naive ({c} at once)"
            print(f"{label:18} {n_wall:8.2f} {n_requests:9d} {n_writes:7d} "
                  f"{n_wall / p_wall:9.2f}")
        print(f"{'read, then prebuilt':18} {r_wall:8.2f} {'':>9} {p_writes:7d} "
              f"{r_wall / p_wall:9.2f}   (sync / this: {sync_wall / r_wall:.2f})")
        print(f"{'prebuilt':18} {p_wall:8.2f} {p_requests:9d} {p_writes:7d} {1:9.2f}")
        print(f"requests by kind: sync {kinds_text(sync_kinds)}; prebuilt {kinds_text(p_kinds)}")
        if SERVER_PID is not None:
            print("server CPU s (mean): " + ", ".join(
                f"{k} {sum(v) / len(v):.1f}" for k, v in cpus.items()))
        print("load average (1, 5, 15 min) at the end of the table: "
              + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
        for c, n_wall, n_requests, _ in naives:
            label = "naive (serial)" if c == 1 else f"naive ({c} at once)"
            print(f"{label}/sync: {n_requests / report.requests:.1f}x requests, "
                  f"{n_wall / sync_wall:.2f}x wall time "
                  f"(ceiling {label}/prebuilt: {n_wall / p_wall:.2f}x)")
        row = {"sync": sync_wall / p_wall, "readpre": r_wall / p_wall}
        row.update({f"workers{n}": w[1] / p_wall for w in workers for n in [w[0]]})
        return row
    finally:
        cleanup(args.base, list(codes.values()))


async def timed_workers(
    base: str, code: str, n: int, state_url: str, rtt_ms: float
) -> tuple[float, int, int, int, int]:
    """``n`` worker processes over one copy (one shared batch); the wall time from the moment
    all of them are ready (interpreters started, imports done, the protocol parsed) until the
    last one reports.
    Returns wall, requests, writes, patients processed (summed), patients claimed twice."""
    reset_shared(state_url, base)
    command = [sys.executable, __file__, "--base", base, "--child-worker", state_url, code,
               str(rtt_ms)]
    children = [await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        for _ in range(n)]
    for child in children:  # each says "ready" once imported
        assert child.stdout is not None
        await child.stdout.readline()
    started, cpu = start_timing()
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    # Until the last worker's report (its run finished and journaled), not its interpreter's
    # exit, which the in-process contenders do not pay.
    lines = await asyncio.gather(*(child.stdout.readline() for child in children
                                   if child.stdout is not None))
    wall = time.perf_counter() - started
    LAST_CPU[0] = server_cpu() - cpu
    for child in children:
        await child.wait()
    reports = [json.loads(line.decode()) for line in lines]
    assert all(r["status"] == "ok" for r in reports), reports
    writes = sum(sum(r["written"].values()) + sum(r["provenance"].values()) for r in reports)
    twice = twice_claimed(state_url)
    kinds = sum((Counter(r["requestKinds"]) for r in reports), Counter())
    print(f"  {n} worker(s) requests by kind: {kinds_text(kinds)}; patients per worker "
          + ", ".join(str(r["patients"]) for r in reports), flush=True)
    return (wall, sum(r["httpRequests"] for r in reports), writes,
            sum(r["patients"] for r in reports), twice)


def reset_shared(state_url: str, base: str) -> None:
    """A fresh batch for the next copy: no watermark, no open batch."""
    from bhi_fhir.store import Store
    from bhi_fhir.store.models import WorkBatch

    store = Store.open(state_url)
    try:
        store.reset_watermark(base)
        with store.engine.begin() as connection:
            connection.execute(WorkBatch.__table__.delete())
    finally:
        store.close()


def twice_claimed(state_url: str) -> int:
    from sqlalchemy import func, select

    from bhi_fhir.store import Store
    from bhi_fhir.store.models import WorkItem

    store = Store.open(state_url)
    try:
        with store.engine.connect() as connection:
            return int(connection.scalar(
                select(func.count()).select_from(WorkItem).where(WorkItem.claims > 1)) or 0)
    finally:
        store.close()


async def child_worker(base: str, state_url: str, code: str, rtt_ms: str) -> None:
    """One ``sync --worker`` (the CLI's ``SyncConfig(shared=True)``) with the added latency:
    says ready, waits for "go" on stdin, prints its JSON report."""
    global RTT
    RTT = float(rtt_ms) / 1000
    # Ready once imported and the shipped protocol parsed (a few hundred ms, cached per
    # process), as the in-process contenders are after the warm-up.
    load_protocol_files()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    report = await run_sync(SyncConfig(
        server=base, today=TODAY, state_url=state_url, shared=True,
        where=[("_tag", f"{CASE}|{code}")], tags=[(CASE, code)], transport=RoundTrip()))
    out = json.loads(report.to_json())
    out["requestKinds"] = dict(KINDS)
    print(json.dumps(out), flush=True)


async def timed_sync(base: str, code: str, run: str) -> tuple[float, Any]:
    state = Path(f"/tmp/bench-sync-{run}-{code}.db")
    started, cpu = start_timing()
    report = await run_sync(SyncConfig(
        server=base, today=TODAY, state_url=f"sqlite:///{state}",
        where=[("_tag", f"{CASE}|{code}")], tags=[(CASE, code)], transport=RoundTrip()))
    wall = time.perf_counter() - started
    LAST_CPU[0] = server_cpu() - cpu
    state.unlink(missing_ok=True)
    return wall, report


if __name__ == "__main__":
    asyncio.run(main())
