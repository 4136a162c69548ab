"""Bulk Data $export against the real HAPI: system, Group and Patient level, ``_type``,
``_since``; the export folder then read by ``apply`` and ``bill --input`` exactly as the files
that were loaded.

Each test seeds its own synthetic clinic (ids prefixed with the case id, the run tag for the
session's cleanup, a case tag). A system-level export is scoped to the case with ``_typeFilter``
on the case tag (the server is shared with the other tests); Group and Patient level exports are
scoped by their patients.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.fhir import FhirClient, bulk
from bhi_fhir.fhir.bulk import ExportRequest, export
from bhi_fhir.fhirjson import patient_of
from bhi_fhir.paths import examples_dir
from bhi_fhir.sources import read_resources
from bhi_fhir.sync import run_sync
from tests.clinic_generator import clinic_generator
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.test_sync import assert_complete, config, planned_creates, seed_clinic
from tests.sync.clinic import _prefixed, clinic, delete_tagged, seed, team

pytestmark = pytest.mark.integration

TYPES = ("Patient", "QuestionnaireResponse", "CarePlan", "Consent", "Encounter", "Task",
         "CareTeam")
PLAN = examples_dir() / "practice-plan.toml"
TODAY = "2026-11-26"  # the synthetic clinic's today
PATIENTS = 26  # every scenario of the generator once, the enrolled ones with billing time


@pytest.fixture(autouse=True)
def _delete_case(fhir_base_url: str, case_id: str) -> Iterator[None]:
    yield
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                  ("Provenance", "ServiceRequest", "Observation", *reversed(TYPES), "Group"))


def seed_case(base: str, run_tag: RunTag, case_id: str, folder: Path) -> list[dict[str, Any]]:
    """The clinic on the server and, as loaded, in ``folder`` (one NDJSON file per type)."""
    for kind in (*TYPES, "Group"):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    prefix = f"b{case_id[:8]}-"
    resources = clinic(PATIENTS, prefix, (TAG_SYSTEM, run_tag.code))
    care_teams = clinic_generator().generate(PATIENTS).by_type.get("CareTeam", [])
    resources += _prefixed(care_teams, prefix, (TAG_SYSTEM, run_tag.code))
    for resource in resources:
        resource["meta"]["tag"].append({"system": CASE_SYSTEM, "code": case_id})
    seed(base, team() + resources)
    for resource in resources:  # as the server holds them: written once (the workflow's
        resource["meta"]["versionId"] = "1"  # identifiers name a response's version)
    folder.mkdir()
    for kind in TYPES:
        with (folder / f"{kind}.ndjson").open("w") as out:
            for resource in resources:
                if resource["resourceType"] == kind:
                    out.write(json.dumps(resource) + "\n")
    return resources


def case_filters(case_id: str, types: tuple[str, ...] = TYPES) -> tuple[str, ...]:
    return tuple(f"{kind}?_tag={CASE_SYSTEM}|{case_id}" for kind in types)


def exported(folder: Path) -> Counter[str]:
    """``Type/id`` of every resource the folder holds (all read without an error)."""
    found: Counter[str] = Counter()
    for item in read_resources([folder]):
        assert isinstance(item, dict), item
        found[f"{item['resourceType']}/{item['id']}"] += 1
    return found


def run_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_system_export_reads_as_the_loaded_files_in_apply_and_bill(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    loaded = seed_case(fhir_base_url, run_tag, case_id, tmp_path / "loaded")
    out = tmp_path / "export"
    args = ["export", "--server", fhir_base_url, "--out", str(out), "--max-poll-interval", "1",
            "--type", ",".join(TYPES), "--format", "json"]
    for type_filter in case_filters(case_id):
        args += ["--type-filter", type_filter]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["resources"] == dict(Counter(r["resourceType"] for r in loaded))
    assert exported(out) == Counter(f"{r['resourceType']}/{r['id']}" for r in loaded)

    # apply and bill read the export folder as they read the files that were loaded.
    plans = [run_json("apply", str(folder), "--plan", str(PLAN), "--today", TODAY,
                      "--format", "json") for folder in (tmp_path / "loaded", out)]
    assert plans[0]["errors"] == [] and plans[1]["errors"] == []
    assert plans[0]["patients"] == plans[1]["patients"]
    assert len(plans[1]["patients"]) == PATIENTS
    bills = [run_json("bill", "--month", "2026-10", "--input", str(folder), "--plan", str(PLAN),
                      "--dry-run", "--format", "json") for folder in (tmp_path / "loaded", out)]
    assert bills[0]["errors"] == [] and bills[1]["errors"] == []
    assert bills[0]["patients"] == bills[1]["patients"]
    assert bills[0]["summary"] == bills[1]["summary"]
    assert bills[1]["patients"], "the clinic's October has billable patient-months"

    # Run again over the finished folder: nothing is asked of the server, the same summary.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["resources"] == summary["resources"]


async def test_group_and_patient_level_exports(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    loaded = seed_case(fhir_base_url, run_tag, case_id, tmp_path / "loaded")
    patients = sorted(r["id"] for r in loaded if r["resourceType"] == "Patient")
    members = patients[:5]
    group = run_tag.tag({
        "resourceType": "Group", "id": f"g{case_id[:8]}", "type": "person", "actual": True,
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in members],
        "meta": {"tag": [{"system": CASE_SYSTEM, "code": case_id}]},
    })

    def owned_by(chosen: list[str], kinds: tuple[str, ...]) -> Counter[str]:
        refs = {f"Patient/{p}" for p in chosen}
        return Counter(f"{r['resourceType']}/{r['id']}" for r in loaded
                       if r["resourceType"] in kinds and patient_of(r) in refs)

    async with FhirClient(fhir_base_url) as fhir:
        await fhir.update(group)
        kinds = ("Patient", "QuestionnaireResponse", "Encounter")
        await export(fhir, ExportRequest(group=group["id"], types=kinds), tmp_path / "group",
                     max_poll_interval=1)
        assert exported(tmp_path / "group") == owned_by(members, kinds)

        two = patients[5:7]
        await export(fhir, ExportRequest(patients=tuple(two), types=("Patient", "CarePlan",
                                                                     "QuestionnaireResponse")),
                     tmp_path / "two", max_poll_interval=1)
        assert exported(tmp_path / "two") == owned_by(two, ("Patient", "CarePlan",
                                                            "QuestionnaireResponse"))


async def test_since_exports_only_what_changed(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    loaded = seed_case(fhir_base_url, run_tag, case_id, tmp_path / "loaded")
    async with FhirClient(fhir_base_url) as fhir:
        kinds = ("Patient", "QuestionnaireResponse")
        # Just after the last seeded write, on the server's clock.
        newest = []
        for kind in kinds:
            async for found in fhir.search(kind, {"_tag": f"{CASE_SYSTEM}|{case_id}",
                                                  "_sort": "-_lastUpdated", "_count": 1}):
                newest.append(found["meta"]["lastUpdated"])
                break
        since = _after_instant(max(newest))
        patient = next(r for r in loaded if r["resourceType"] == "Patient")
        stored = await fhir.read("Patient", patient["id"])
        changed = {**stored, "gender": "other" if stored.get("gender") != "other" else "male"}
        changed["meta"] = {"tag": stored["meta"]["tag"]}
        await fhir.update(changed)
        request = ExportRequest(types=kinds, since=since,
                                type_filters=case_filters(case_id, kinds))
        result = await export(fhir, request, tmp_path / "since", max_poll_interval=1)
    assert exported(tmp_path / "since") == Counter({f"Patient/{patient['id']}": 1})
    assert result.by_type() == {"Patient": 1}


def _after_instant(instant: str) -> str:
    """An instant just after ``instant`` (its millisecond + 1): the seeding is before it."""
    when = datetime.fromisoformat(instant.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return when.isoformat(timespec="milliseconds")


async def test_sync_bulk_first_run_plans_and_writes_as_the_searches_do(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "DEFAULT_MAX_POLL_INTERVAL", 1.0)  # HAPI asks for 120 s
    responses = seed_clinic(fhir_base_url, run_tag, case_id, PATIENTS)
    for kind in ("ServiceRequest", "Observation", "Provenance"):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    searched = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "a.db",
                                     dry_run=True))
    from_export = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "b.db",
                                        dry_run=True, bulk=tmp_path / "dry"))
    assert from_export.status == searched.status == "ok"
    assert from_export.responses == searched.responses == responses
    expected = planned_creates(searched)
    assert expected and planned_creates(from_export) == expected
    assert (tmp_path / "dry" / "QuestionnaireResponse.ndjson").is_file()

    state = tmp_path / "c.db"
    first = await run_sync(config(fhir_base_url, run_tag, case_id, state,
                                  bulk=tmp_path / "export"))
    assert first.status == "ok", first.problems
    assert_complete(fhir_base_url, case_id, expected)
    assert first.watermark  # the next run searches from the export's time
    # Later runs search (the watermark is set): nothing new to write.
    again = await run_sync(config(fhir_base_url, run_tag, case_id, state,
                                  bulk=tmp_path / "export"))
    # (it may read again the responses within the watermark's safety margin: nothing to write)
    assert again.status == "ok" and not again.written
    print(f"\nfirst run (dry run): searches {searched.requests} requests in "
          f"{searched.duration_s:.1f} s, bulk {from_export.requests} in "
          f"{from_export.duration_s:.1f} s; bulk run writing {first.duration_s:.1f} s")
