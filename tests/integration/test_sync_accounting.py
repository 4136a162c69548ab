"""Exact accounting and bounded transactions on the real HAPI, behind the fault proxy.

* HAPI commits a transaction and its answer is lost (a reset, a gateway's 502, a hang past the
  client's timeout): the sync searches for its Provenance by key and run tag before counting
  or re-sending, so what the report says it created equals what the server holds (counted by
  business identifier and Provenance key, per case tag), with no duplicate and nothing missing.
* A patient with a long history (one PHQ-9 a week for 40 weeks: ~500 entries) is written in
  transactions of at most ``max_entries`` entries, each screening set whole with its panel and
  Provenance; a re-run writes nothing; a response dated after today gets no Observations.
* The practice plan's ``sync.backfill_days`` writes Observations only for recent responses.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bhi_fhir.store import Store
from bhi_fhir.sync import RunReport, run_sync
from bhi_fhir.sync.runner import default_plan_path
from tests.instruments.screen_records import phq9_response
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.test_sync import (
    TODAY,
    _delete_case,  # noqa: F401  (autouse fixture: deletes this case's resources)
    assert_complete,
    config,
    identifiers_on_server,
    planned_creates,
    seed_clinic,
)
from tests.integration.test_sync_reliability import FaultProxy
from tests.sync.clinic import seed, team

WEEKS = 40  # one PHQ-9 a week: ~12 entries each (items, total, panel, Provenance)


def _written(found: Counter[str], seeded: Counter[str]) -> tuple[int, int]:
    """(resources, Provenance) the sync wrote: on the server now, less what was seeded."""
    new = found - seeded
    provenance = sum(n for k, n in new.items() if k.startswith("Provenance|"))
    return sum(new.values()) - provenance, provenance


def _assert_report_is_server(report: RunReport, state: Path, found: Counter[str],
                             seeded: Counter[str]) -> None:
    resources, provenance = _written(found, seeded)
    assert (report.written["created"], report.provenance["created"]) == (resources, provenance), (
        report.to_text())
    journal = Counter(
        ("Provenance" if row.identifier.startswith("provenance:") else "resource", row.outcome)
        for row in Store.open(f"sqlite:///{state}").writes(report.run_id))
    assert journal[("resource", "created")] == resources
    assert journal[("Provenance", "created")] == provenance


async def _through_proxy(base: str, fault: str | None, times: int, hang: float = 12.0
                         ) -> tuple[FaultProxy, str]:
    upstream = httpx.URL(base)
    proxy = FaultProxy(f"{upstream.scheme}://{upstream.host}:{upstream.port}", hang=hang)
    proxy.transaction_fault = fault
    proxy.transaction_fault_times = times
    origin = await proxy.start()
    return proxy, origin + upstream.path


@pytest.mark.parametrize("fault", ["lost-reset", "lost-502", "lost-hang", "lost-late"])
async def test_a_lost_answer_after_commit_is_counted_once(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path, fault: str
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, 12)
    seeded = identifiers_on_server(fhir_base_url, case_id)  # the clinic's own engage Task
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    expected = planned_creates(dry)
    # lost-late: the client gives up at 6 s, searches (nothing yet), the request reaches HAPI
    # at 6.5 s while the re-send follows at 7 s.
    proxy, proxied = await _through_proxy(fhir_base_url, fault, 3,
                                          hang=6.5 if fault == "lost-late" else 12.0)
    state = tmp_path / "state.db"
    try:
        report = await run_sync(config(proxied, run_tag, case_id, state, timeout=6.0,
                                       group_size=4, max_entries=40))
    finally:
        await proxy.stop()
    assert report.status == "ok", report.to_text()
    assert proxy.faults[fault] == 3, proxy.faults
    found = assert_complete(fhir_base_url, case_id, expected)
    _assert_report_is_server(report, state, found, seeded)
    print(f"\n{fault}: {proxy.faults[fault]} answers lost after commit; report created "
          f"{report.written['created']} + {report.provenance['created']} Provenance = server "
          f"{_written(found, seeded)}; {proxy.requests} requests")

    again = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "again.db"))
    assert again.status == "ok" and again.written["created"] == 0, again.to_text()
    assert again.provenance["created"] == 0
    assert identifiers_on_server(fhir_base_url, case_id) == found


def _long_history(base: str, run_tag: RunTag, case_id: str, future: int = 1) -> str:
    """One patient with a PHQ-9 every week for ``WEEKS`` weeks, and ``future`` dated after
    today; returns the patient's reference."""
    pid = f"c{case_id[:8]}-long"
    tags = [{"system": TAG_SYSTEM, "code": run_tag.code}, {"system": CASE_SYSTEM, "code": case_id}]
    for kind in ("Patient", "QuestionnaireResponse", "Task", "ServiceRequest", "CarePlan",
                 "Observation", "Provenance"):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": pid, "gender": "female",
                                        "birthDate": "1980-01-01"}]
    for week in range(-future, WEEKS):
        day = TODAY - timedelta(weeks=week)
        resources.append(phq9_response(pid, day.isoformat(), rid=f"{pid}-w{week + future}"))
    for resource in resources:
        resource["meta"] = {"tag": [dict(t) for t in tags]}
    seed(base, team() + resources)
    return f"Patient/{pid}"


def _observations_by_response(found: Counter[str]) -> Counter[str]:
    """Screening Observations on the server per response id (their identifiers start with it)."""
    out: Counter[str] = Counter()
    for key, n in found.items():
        kind, _, value = key.partition("|")
        if kind == "Observation" and value.startswith("QuestionnaireResponse/"):
            out[value.split("/", 1)[1].split("#", 1)[0].split("/", 1)[0]] += n
    return out


async def test_a_long_history_is_written_in_bounded_transactions(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    patient = _long_history(fhir_base_url, run_tag, case_id)
    seeded = identifiers_on_server(fhir_base_url, case_id)
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    expected = planned_creates(dry)
    planned = sum(n for counts in dry.planned.values() for n in counts.values())
    assert dry.future_dated == 1 and planned > WEEKS, dry.to_text()
    # Two answers lost after HAPI committed, in the middle of the patient's parts.
    proxy, proxied = await _through_proxy(fhir_base_url, "lost-502", 2)
    state = tmp_path / "state.db"
    started = asyncio.get_running_loop().time()
    try:
        report = await run_sync(config(proxied, run_tag, case_id, state, max_entries=100))
    finally:
        await proxy.stop()
    elapsed = asyncio.get_running_loop().time() - started
    assert report.status == "ok", report.to_text()
    sizes = proxy.transaction_sizes
    assert len(sizes) >= 5 and max(sizes) <= 100, sizes
    found = assert_complete(fhir_base_url, case_id, expected)
    _assert_report_is_server(report, state, found, seeded)
    by_response = _observations_by_response(found)
    assert f"{patient.split('/')[1]}-w0" not in by_response  # dated after today: none
    assert len(by_response) == WEEKS
    print(f"\nlong history: {sum(sizes)} entries in {len(sizes)} transactions (largest "
          f"{max(sizes)}; {sizes}), {elapsed:.1f}s; report created {report.written['created']}"
          f" + {report.provenance['created']} Provenance = server {_written(found, seeded)}")

    again = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "s2.db",
                                  max_entries=100))
    assert again.status == "ok" and again.written["created"] == 0, again.to_text()
    assert identifiers_on_server(fhir_base_url, case_id) == found


async def test_backfill_days_writes_only_recent_observations(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    patient = _long_history(fhir_base_url, run_tag, case_id, future=0)
    plan = tmp_path / "plan.toml"
    plan.write_text(default_plan_path().read_text(encoding="utf-8").replace(
        "# backfill_days = 365", "backfill_days = 180"), encoding="utf-8")
    report = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "s.db",
                                   plan_path=plan))
    assert report.status == "ok", report.to_text()
    recent = 180 // 7 + 1  # weeks 0..25 are within 180 days of today
    assert report.before_backfill == WEEKS - recent
    by_response = _observations_by_response(identifiers_on_server(fhir_base_url, case_id))
    pid = patient.split("/")[1]
    assert set(by_response) == {f"{pid}-w{w}" for w in range(recent)}
    assert "backfill" in report.to_text()
