"""Sync vs a naive client vs HAPI ingesting prebuilt transaction Bundles, on the real server.

Three copies of the same synthetic clinic (examples/generate_clinic.py, ids prefixed per copy,
>= 1,000 QuestionnaireResponses by default) are seeded; then, one copy each:

* ``sync``     — ``run_sync``: paged search with includes, one batch read per group of
                 patients, transactions of <= 100 writes;
* ``naive``    — one request per resource: search the changed responses, GET each patient and
                 each context search per patient, POST every output (conditional create; a
                 resource referencing one created after it is fixed by a PUT), 8 patients at
                 once (``--naive-concurrency 1``: strictly serial);
* ``prebuilt`` — the same output as ready-made transaction Bundles of the sync's sizes, 4 at
                 once, only the POSTs timed (the server-bound limit).

    .venv/bin/python benchmarks/bench_sync.py [--patients 780] [--naive-concurrency 8]

Measured 2026-11-26 (2 cores shared with other work, HAPI 8.8.0, 780 patients, 1,014
responses, 12,246 writes): sync 144.8 s / 190 requests; naive (8 at once) 292.3 s / 19,311;
prebuilt 200.4 s / 133 — naive/sync 101.6x requests, 2.0x wall time; sync/prebuilt 0.72x.

Prints wall times, request counts and ratios. No assertions. Leaves data tagged
``https://bhi-fhir.dev/test-case|bench-<run>`` and deletes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bhi_fhir.fhir import FhirClient
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sync import SyncConfig, plan_patient, run_sync
from bhi_fhir.sync.runner import (
    DEFAULT_AGENT,
    _scrub,
    _write_chunks,
    default_plan_path,
    load_protocol_files,
)
from bhi_fhir.sync.source import fetch_changed, fetch_contexts, fetch_server_info
from tests.sync.clinic import clinic, count, delete_tagged, seed, team

CASE = "https://bhi-fhir.dev/test-case"
TODAY = date(2026, 11, 26)
TYPES = ("Provenance", "Task", "ServiceRequest", "CarePlan", "Observation", "Encounter",
         "Consent", "QuestionnaireResponse", "Patient")


def seed_copy(base: str, patients: int, code: str) -> int:
    resources = clinic(patients, f"{code}-", (CASE, code))
    seed(base, resources)
    return count(resources, "QuestionnaireResponse")


async def plans_for(base: str, code: str) -> tuple[list, int]:
    protocol, practice = load_protocol_files(), load_practice_plan(default_plan_path())
    async with FhirClient(base) as client:
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
    async with FhirClient(base, max_concurrency=8) as client:
        responses = [
            qr async for qr in client.search(
                "QuestionnaireResponse", {"_tag": f"{CASE}|{code}", "_count": 200}
            )
        ]
        patients = list(dict.fromkeys(q["subject"]["reference"] for q in responses))
        gate = asyncio.Semaphore(concurrency)  # patients in flight (1 = strictly serial)

        async def one(patient: str) -> int:
            async with gate:
                return await naive_patient(client, patient, protocol, practice)

        written = sum(await asyncio.gather(*(one(p) for p in patients)))
        return time.perf_counter() - started, client.request_count, written


async def naive_patient(  # type: ignore[no-untyped-def]
    client: FhirClient, patient: str, protocol, practice
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
    for write in plan.writes + plan.provenance:
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


def _urns(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urns(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urns(v)]
    return [value] if isinstance(value, str) and value.startswith("urn:uuid:") else []


def _resolve(value, ids):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


async def prebuilt(base: str, code: str) -> tuple[float, int, int]:
    plans, _ = await plans_for(base, code)
    bundles = []  # the sync's own transaction sizes (whole patients, <= 100 writes)
    for chunk in _write_chunks(plans, SyncConfig(server=base).max_entries):
        entries = [w.entry() for p in chunk for w in p.writes + p.provenance]
        if entries:
            bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    async with FhirClient(base) as client:
        started = time.perf_counter()
        gate = asyncio.Semaphore(4)

        async def post(bundle: dict) -> None:  # type: ignore[type-arg]
            async with gate:
                await client.transaction(bundle)

        await asyncio.gather(*(post(b) for b in bundles))
        return (time.perf_counter() - started, client.request_count,
                sum(len(b["entry"]) for b in bundles))


def cleanup(base: str, codes: list[str]) -> None:
    for code in codes:
        delete_tagged(base, f"{CASE}|{code}", TYPES)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=780)
    parser.add_argument("--base", default="http://127.0.0.1:8080/fhir")
    parser.add_argument("--naive-concurrency", type=int, default=8,
                        help="patients the naive client works on at once")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    codes = [f"bench-{run}-{name}" for name in ("sync", "naive", "pre")]
    seed(args.base, team())
    responses = [seed_copy(args.base, args.patients, code) for code in codes]
    print(f"clinic: {args.patients} patients, {responses[0]} responses per copy")
    try:
        state = Path(f"/tmp/bench-sync-{run}.db")
        started = time.perf_counter()
        report = await run_sync(SyncConfig(
            server=args.base, today=TODAY, state_url=f"sqlite:///{state}",
            where=[("_tag", f"{CASE}|{codes[0]}")], tags=[(CASE, codes[0])]))
        sync_wall = time.perf_counter() - started
        sync_writes = sum(report.written.values()) + sum(report.provenance.values())
        print(f"sync: {sync_wall:.1f}s, {report.requests} requests", flush=True)
        p_wall, p_requests, p_writes = await prebuilt(args.base, codes[2])
        print(f"prebuilt: {p_wall:.1f}s, {p_requests} requests", flush=True)
        n_wall, n_requests, n_writes = await naive(args.base, codes[1], args.naive_concurrency)
        print(f"{'':10} {'wall s':>8} {'requests':>9} {'writes':>7}")
        print(f"{'sync':10} {sync_wall:8.2f} {report.requests:9d} {sync_writes:7d}"
              f"   ({report.status}, {len(report.errors)} errors)")
        print(f"{'naive':10} {n_wall:8.2f} {n_requests:9d} {n_writes:7d}")
        print(f"{'prebuilt':10} {p_wall:8.2f} {p_requests:9d} {p_writes:7d}")
        print(f"naive/sync: {n_requests / report.requests:.1f}x requests, "
              f"{n_wall / sync_wall:.1f}x wall time")
        print(f"sync/prebuilt: {sync_wall / p_wall:.2f}x wall time")
    finally:
        cleanup(args.base, codes)


if __name__ == "__main__":
    asyncio.run(main())
