"""`bhi-fhir bill` offline (--input files): report formats, bundle output, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app

from .builders import PCP, chart, entry, visit

_register()
runner = CliRunner()


@pytest.fixture
def clinic(tmp_path):
    resources = [
        *chart(),
        entry("2026-10-05 10:00", 30),
        entry("2026-10-05 10:15", 30),  # overlaps: 45 counted
        entry("2026-10-20 10:00", 40),
        visit("2026-10-07 09:00", "99213"),
        {"resourceType": "Practitioner", "id": "pcp"},
    ]
    path = tmp_path / "clinic.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in resources) + "\nnot json\n")
    rules = tmp_path / "plan.toml"
    rules.write_text(
        '[billing]\nprogram = "cocm"\ntimezone = "America/New_York"\n'
        f'billing_practitioner = "{PCP}"\n'
        "[billing.payers.Medicare]\nmax_99494_units = 2\n"
    )
    return path, rules


def invoke(*args):
    return runner.invoke(app, ["bill", *args], env={"COLUMNS": "300"})


def test_json_report(clinic, tmp_path):
    data, rules = clinic
    out = tmp_path / "bundle.json"
    result = invoke(
        "--month", "2026-10", "--input", str(data), "--rules", str(rules),
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["patients"]
    assert row["minutes"] == 85
    assert row["codes"] == [{"code": "99492", "units": 1}]
    assert row["billable"] and row["result"] == "dry-run"
    assert row["mrn"] == "MRN-0001" and row["payer"] == "Medicare"
    assert row["diagnosis"] == ["F32.1"]
    assert row["requirements"] == {
        "consent": True,
        "initiating_visit": True,
        "psychiatric_consultant": True,
    }
    assert report["errors"][0]["line"] == len(data.read_text().splitlines())
    bundle = json.loads(out.read_text())
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Encounter", "Provenance"]


def test_csv_report(clinic):
    data, rules = clinic
    result = invoke(
        "--month", "2026-10", "--input", str(data), "--rules", str(rules), "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["codes"] == "99492x1"
    assert rows[0]["billable"] == "True"
    assert rows[0]["patient"] == "Patient/p1"


def test_table_report(clinic):
    data, rules = clinic
    result = invoke("--month", "2026-10", "--input", str(data), "--rules", str(rules))
    assert result.exit_code == 0, result.output
    assert "99492x1" in result.stdout
    assert "MRN-0001" in result.stdout


def test_month_without_time_reports_nobody(clinic):
    data, rules = clinic
    result = invoke(
        "--month", "2026-09", "--input", str(data), "--rules", str(rules), "--format", "json"
    )
    assert json.loads(result.stdout)["patients"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--month", "2026-13", "--input", "x.ndjson"],
        ["--month", "2026-10"],
        ["--month", "2026-10", "--input", "x.ndjson", "--timezone", "Mars/Olympus"],
    ],
)
def test_bad_options_exit_2(args):
    assert invoke(*args).exit_code == 2


def test_open_month_is_not_written(clinic):
    _data, _ = clinic
    result = invoke("--month", "2999-01", "--server", "http://127.0.0.1:9/fhir")
    assert result.exit_code == 2
    assert "has not ended" in result.output
