"""The sync on the real HAPI: seed a small tagged clinic, sync, re-sync, dry-run, race.

Every test seeds its own clinic (ids prefixed with the case id, tagged with the run tag for
cleanup and with a case tag the sync is scoped to with ``where``). Everything the sync writes
carries both tags, so counts by identifier are per test.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.store import Store
from bhi_fhir.sync import RunReport, SyncConfig, run_sync
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.sync.clinic import clinic, count, delete_tagged, seed, team

TODAY = date(2026, 11, 26)
WRITTEN_TYPES = ("Task", "ServiceRequest", "CarePlan", "Observation", "Provenance")
SEEDED_TYPES = ("Patient", "QuestionnaireResponse", "CarePlan", "Consent", "Encounter", "Task")


@pytest.fixture(autouse=True)
def _delete_case(fhir_base_url: str, case_id: str) -> Iterator[None]:
    """Delete by the case tag in batches (see ``delete_tagged``: HAPI's conditional delete
    of thousands of matches takes minutes)."""
    yield
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                  ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


def seed_clinic(base: str, run_tag: RunTag, case_id: str, patients: int) -> int:
    """Seed the clinic; returns the number of QuestionnaireResponses."""
    for kind in (*SEEDED_TYPES, *WRITTEN_TYPES):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    resources = clinic(patients, f"c{case_id[:8]}-", (TAG_SYSTEM, run_tag.code))
    for resource in resources:
        resource["meta"]["tag"].append({"system": CASE_SYSTEM, "code": case_id})
    seed(base, team() + resources)
    return count(resources, "QuestionnaireResponse")


def config(base: str, run_tag: RunTag, case_id: str, state: Path, **kw: object) -> SyncConfig:
    return SyncConfig(
        server=base,
        today=TODAY,
        state_url=f"sqlite:///{state}",
        where=[("_tag", f"{CASE_SYSTEM}|{case_id}")],
        tags=[(TAG_SYSTEM, run_tag.code), (CASE_SYSTEM, case_id)],
        **kw,  # type: ignore[arg-type]
    )


def identifiers_on_server(base: str, case_id: str) -> Counter[str]:
    """Every business identifier (Provenance: its tag key) the sync wrote for this case."""
    found: Counter[str] = Counter()
    with httpx.Client(timeout=120, headers={"Cache-Control": "no-cache"}) as http:
        for kind in WRITTEN_TYPES:
            url: str | None = f"{base}/{kind}"
            params: dict[str, str] | None = {"_tag": f"{CASE_SYSTEM}|{case_id}", "_count": "500"}
            while url:
                page = http.get(url, params=params).json()
                for entry in page.get("entry", []):
                    resource = entry["resource"]
                    values = [
                        i["value"] for i in resource.get("identifier", [])
                        if i.get("system") == BHI_IDENTIFIER
                    ] + [
                        t["code"] for t in resource.get("meta", {}).get("tag", [])
                        if t.get("system") == BHI_IDENTIFIER
                    ]
                    if not values:  # seeded by the test, not written by the sync
                        continue
                    assert len(values) == 1, f"{kind}/{resource['id']} has {values}"
                    found[f"{kind}|{values[0]}"] += 1
                url = next(
                    (lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None
                )
                params = None
    return found


def planned_creates(report: RunReport) -> set[str]:
    return {
        c["identifier"]
        for d in report.to_dict()["diff"]
        for c in d["changes"]
        if c["change"] == "create"
    }


def assert_complete(base: str, case_id: str, expected: set[str]) -> Counter[str]:
    found = identifiers_on_server(base, case_id)
    duplicates = {k: n for k, n in found.items() if n > 1}
    assert not duplicates, f"duplicates: {sorted(duplicates)[:5]} ({len(duplicates)})"
    values = {k.split("|", 1)[1] for k in found}
    missing = expected - values
    assert not missing, f"missing: {sorted(missing)[:5]} ({len(missing)})"
    return found


async def test_sync_then_resync_writes_nothing_new(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    responses = seed_clinic(fhir_base_url, run_tag, case_id, 66)
    seeded = identifiers_on_server(fhir_base_url, case_id)  # the clinic's own engage Task
    state = tmp_path / "state.db"

    dry = await run_sync(config(fhir_base_url, run_tag, case_id, state, dry_run=True))
    assert dry.status == "ok", dry.to_text()
    assert dry.responses == responses and dry.patients == 66
    assert identifiers_on_server(fhir_base_url, case_id) == seeded  # dry run wrote nothing
    assert Store.open(f"sqlite:///{state}").watermark(fhir_base_url) is None
    expected = planned_creates(dry)
    assert {"engage", "consent", "enroll", "crisis-assessment", "screening"} <= set(dry.planned)

    first = await run_sync(config(fhir_base_url, run_tag, case_id, state))
    assert first.status == "ok", first.to_text()
    assert first.written["created"] > 0 and first.written["existed"] == 0
    assert first.provenance["created"] > 0
    assert first.watermark is not None
    after_first = assert_complete(fhir_base_url, case_id, expected)
    # one Provenance per workflow write, one per response's screening set
    provenance = sum(1 for k in after_first if k.startswith("Provenance|"))
    assert provenance == first.provenance["created"]

    # full re-sync from the beginning: everything is found, nothing new is written
    again = await run_sync(config(fhir_base_url, run_tag, case_id, state, since="2000-01-01"))
    assert again.status == "ok", again.to_text()
    assert again.written["created"] == 0 and again.provenance["created"] == 0, again.to_text()
    assert identifiers_on_server(fhir_base_url, case_id) == after_first
    changes = {change for counts in again.planned.values() for change in counts}
    assert "create" not in changes, again.planned

    # from the watermark: at most the last moments' responses are seen again
    incremental = await run_sync(config(fhir_base_url, run_tag, case_id, state))
    assert incremental.written["created"] == 0
    assert incremental.requests < first.requests


async def test_two_syncs_at_once_do_not_duplicate(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, 66)
    dry = await run_sync(
        config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db", dry_run=True)
    )
    # separate stores: the worst case (no shared watermark), small groups to interleave
    a, b = await asyncio.gather(
        run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "a.db", group_size=5)),
        run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "b.db", group_size=5)),
    )
    assert_complete(fhir_base_url, case_id, planned_creates(dry))
    # whatever raced was retried: a third run has nothing left to do
    c = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "c.db"))
    assert c.written["created"] == 0 and c.status == "ok", c.to_text()
    assert a.written["created"] + b.written["created"] > 0
