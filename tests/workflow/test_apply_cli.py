"""`bhi-fhir apply`: the contract in its module docstring."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from bhi_fhir.cli import _register, app

from .helpers import ROOT

_register()
runner = CliRunner()
PLAN = str(ROOT / "examples" / "practice-plan.toml")
CLINIC = ROOT / "examples" / "clinic"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["apply", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_stdout_is_exactly_one_object(tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    code, stdout, _ = _run(
        str(CLINIC), "--plan", PLAN, "--today", "2026-11-26", "--format", "json", "--out", str(out)
    )
    assert code == 0
    report = json.loads(stdout)  # exactly one JSON document, nothing else
    assert set(report) == {"patients", "errors"}
    assert report["errors"] == []
    assert len(report["patients"]) == 66
    for patient in report["patients"]:
        assert set(patient) == {"patient", "actions"}
        assert patient["patient"].startswith("Patient/")
        for action in patient["actions"]:
            assert set(action) == {"rule", "resourceType", "priority", "reason"}
    crisis = [a for p in report["patients"] for a in p["actions"] if a["rule"] == "crisis-referral"]
    assert {a["priority"] for a in crisis} == {"stat", "urgent"}
    bundle = json.loads(out.read_text())
    assert bundle["type"] == "transaction"
    writes = sum(len(p["actions"]) for p in report["patients"])
    assert len(bundle["entry"]) == writes


def test_bad_line_goes_to_errors_and_the_rest_is_processed(tmp_path: Path) -> None:
    shutil.copytree(CLINIC, tmp_path / "clinic")
    qrs = tmp_path / "clinic" / "QuestionnaireResponse.ndjson"
    lines = qrs.read_text().splitlines(keepends=True)
    lines.insert(2, "{this is not json\n")
    qrs.write_text("".join(lines))
    code, stdout, _ = _run(
        str(tmp_path / "clinic"), "--plan", PLAN, "--today", "2026-11-26", "--format", "json"
    )
    assert code == 65  # the bad line is reported, the rest processed
    report = json.loads(stdout)
    assert len(report["errors"]) == 1
    error = report["errors"][0]
    assert error["file"].endswith("QuestionnaireResponse.ndjson")
    assert error["line"] == 3
    assert "not JSON" in error["message"]
    assert len(report["patients"]) == 66


def test_resource_without_patient_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps({"resourceType": "QuestionnaireResponse", "id": "x"}) + "\n")
    code, stdout, _ = _run(str(bad), "--plan", PLAN, "--today", "2026-11-26", "--format", "json")
    assert code == 65  # bad data
    report = json.loads(stdout)
    assert report["patients"] == []
    assert report["errors"][0]["message"] == "QuestionnaireResponse has no Patient reference"


def test_text_output_says_what_fired_and_why() -> None:
    code, stdout, _ = _run(str(CLINIC), "--plan", PLAN, "--today", "2026-11-26")
    assert code == 0
    assert "crisis-referral: ServiceRequest, stat" in stdout
    assert "66 patients" in stdout


def test_bad_plan_exits_78_naming_the_key(tmp_path: Path) -> None:
    text = Path(PLAN).read_text().replace('high = "emergency-department"', 'high = "icu"')
    bad = tmp_path / "plan.toml"
    bad.write_text(text)
    code, _, stderr = _run(str(CLINIC), "--plan", str(bad), "--today", "2026-11-26")
    assert code == 78  # configuration
    assert "crisis.levels.high: unknown level 'icu'" in stderr


def test_bundle_is_streamed_and_plans_are_not_kept(tmp_path: Path) -> None:
    """Offline apply over a bulk export must not hold every generated resource in memory:
    with a sink, the report keeps only the per-patient summaries."""
    from bhi_fhir.practice_plan import load_practice_plan
    from bhi_fhir.workflow.pipeline import BundleWriter, run_apply

    out = tmp_path / "bundle.json"
    writer = BundleWriter(out)
    report = run_apply([CLINIC], load_practice_plan(Path(PLAN)), date(2026, 11, 26), sink=writer)
    assert not out.exists()  # nothing in place until the run has finished
    writer.close(commit=True)
    assert report.plans == []
    bundle = json.loads(out.read_text())
    assert bundle["type"] == "transaction"
    assert len(bundle["entry"]) == report.writes > 0
    assert not list(tmp_path.glob(".*partial"))


def test_a_failed_run_leaves_no_half_bundle(tmp_path: Path) -> None:
    from bhi_fhir.workflow.pipeline import BundleWriter

    out = tmp_path / "bundle.json"
    writer = BundleWriter(out)
    writer.close(commit=False)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_apply_over_its_own_bundle_adds_nothing(tmp_path: Path) -> None:
    """A write is recognised by its conditional-create identifier, not a
    server id, so the --out Bundle read back beside its input plans no write again."""
    first = tmp_path / "first.json"
    code, stdout, _ = _run(str(CLINIC), "--plan", PLAN, "--today", "2026-11-26",
                           "--format", "json", "--out", str(first))  # fmt: skip
    assert code == 0
    planned = sum(len(p["actions"]) for p in json.loads(stdout)["patients"])
    assert planned > 0
    entries = json.loads(first.read_text())["entry"]
    assert all("ifNoneExist" in e["request"] and "id" not in e["resource"] for e in entries)
    second = tmp_path / "second.json"
    code, stdout, _ = _run(str(CLINIC), str(first), "--plan", PLAN, "--today", "2026-11-26",
                           "--format", "json", "--out", str(second))  # fmt: skip
    assert code == 0
    report = json.loads(stdout)
    assert report["errors"] == []
    assert [a for p in report["patients"] for a in p["actions"]] == []
    assert json.loads(second.read_text())["entry"] == []
    code, stdout, _ = _run(str(CLINIC), str(first), "--plan", PLAN, "--today", "2026-11-26")
    assert "already planned (conditional create)" in stdout
