"""``bhi-fhir report --server`` on the real HAPI: the program figures computed from the server's
records are the figures computed from the same resources in memory, and the command writes
its file.

The clinic is seeded per case (ids prefixed, run and case tags). The server may hold other
data, so the equality is checked over the case's enrolled patients; the command's own output
is checked to count at least them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.fhir import FhirClient
from bhi_fhir.metrics.cli import figures_from_records
from bhi_fhir.metrics.figures import parse_period, report_json
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.registry.model import enrollment_rule_of
from bhi_fhir.registry.reader import read_records
from bhi_fhir.registry.rows import enrolled_in
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.test_sync import SEEDED_TYPES, WRITTEN_TYPES
from tests.sync.clinic import clinic, delete_tagged, seed, team

TODAY = date(2026, 11, 26)
PLAN_PATH = examples_dir() / "practice-plan.toml"
PLAN = load_practice_plan(PLAN_PATH)
PERIOD = "2026-Q4"


@pytest.fixture(autouse=True)
def _delete_case(fhir_base_url: str, case_id: str) -> Iterator[None]:
    yield
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                  ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


def _owner(resource: dict[str, Any]) -> str:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    ref = resource.get("subject") or resource.get("patient") or resource.get("for") or {}
    return str(ref.get("reference", "")).removeprefix("Patient/")


def _seed(base: str, run_tag: RunTag, case_id: str) -> dict[str, list[dict[str, Any]]]:
    for kind in SEEDED_TYPES:
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    resources = clinic(30, f"c{case_id[:8]}-", (TAG_SYSTEM, run_tag.code))
    for resource in resources:
        resource["meta"]["tag"].append({"system": CASE_SYSTEM, "code": case_id})
    seed(base, team() + resources)
    records: dict[str, list[dict[str, Any]]] = {}
    for resource in sorted(resources, key=lambda r: r["resourceType"] != "Patient"):
        records.setdefault(_owner(resource), []).append(resource)
    rule = enrollment_rule_of(PLAN)
    return {p: r for p, r in records.items() if enrolled_in(r, rule)}


def _figures(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    result = figures_from_records(records, TODAY, PLAN, parse_period(PERIOD),
                                  measure_outcomes={}, feedback=[])
    return dict(json.loads(report_json(result)))


def test_report_from_the_server_is_the_report_from_the_records(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    seeded = _seed(fhir_base_url, run_tag, case_id)
    assert seeded, "the clinic generator enrolled no one"

    async def read() -> dict[str, list[dict[str, Any]]]:
        async with FhirClient(fhir_base_url, timeout=120) as client:
            return await read_records(client, sorted(seeded))

    from_server = _figures(asyncio.run(read()))
    from_memory = _figures(seeded)
    assert from_server["metrics"] == from_memory["metrics"]
    assert from_server["enrolledPatients"] == len(seeded)

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "report", "--period", PERIOD, "--server", fhir_base_url, "--plan", str(PLAN_PATH),
        "--today", TODAY.isoformat(), "--format", "json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["enrolledPatients"] >= len(seeded)
    caseload = next(m for m in written["metrics"] if m["id"] == "caseload")
    assert sum(row[1] for row in caseload["rows"]) >= len(seeded)
    assert {m["id"] for m in written["metrics"]} == {m["id"] for m in from_memory["metrics"]}
