"""``bhi-fhir report`` over the bundled clinic (examples/clinic, "today" 2026-11-26), and the
period and CSV helpers it writes with."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.exit_codes import EXIT_DATAERR
from bhi_fhir.measures.common import Period
from bhi_fhir.metrics.figures import csv_cell, parse_period

ROOT = Path(__file__).resolve().parents[2]
CLINIC = ROOT / "examples" / "clinic"
PLAN = ROOT / "examples" / "practice-plan.toml"


def run_report(tmp_path: Path, fmt: str, period: str = "2026-Q4") -> tuple[int, str, str]:
    out = tmp_path / f"report.{fmt}"
    result = CliRunner().invoke(app, [
        "report", "--period", period, "--input", str(CLINIC), "--plan", str(PLAN),
        "--today", "2026-11-26", "--format", fmt, "--output", str(out)])
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    return result.exit_code, text, result.output


@pytest.fixture(scope="module")
def clinic_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    code, text, output = run_report(tmp_path_factory.mktemp("report"), "json")
    assert code == 0, output
    return dict(json.loads(text))


def _metric(report: dict[str, object], metric_id: str) -> dict[str, object]:
    metrics = report["metrics"]
    assert isinstance(metrics, list)
    return next(m for m in metrics if m["id"] == metric_id)


def test_clinic_figures(clinic_json: dict[str, object]) -> None:
    assert clinic_json["enrolledPatients"] == 13  # examples/clinic/README.md: 13 enrolled
    caseload = _metric(clinic_json, "caseload")
    assert sum(r[1] for r in caseload["rows"]) == 13  # type: ignore[attr-defined]
    minutes = _metric(clinic_json, "minutes")
    # examples/clinic/README.md: October's rows, 9 of the 13 reach a code
    assert minutes["rows"][0][:2] == ["2026-10", 13]  # type: ignore[index]
    assert minutes["rows"][0][3] == 9  # type: ignore[index]
    assert _metric(clinic_json, "feedback")["headline"] == "no feedback collected"
    for metric in clinic_json["metrics"]:  # type: ignore[attr-defined]
        assert metric["definition"] and metric["source"]


def test_every_format_writes_the_same_metrics(tmp_path: Path) -> None:
    code, html, _ = run_report(tmp_path, "html")
    assert code == 0
    assert "<h2>Caseload per care manager</h2>" in html and "@media print" in html
    assert "<script" not in html
    code, text, _ = run_report(tmp_path, "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["metric"] for r in rows} >= {"caseload", "minutes", "measures", "crisis"}
    assert any(r["metric"] == "minutes" and r["row"] == "2026-10" and r["column"] == "billable"
               and r["value"] == "9" for r in rows)


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        pytest.param(["--period", "2026-Q5", "--input", str(CLINIC)], "--period", id="bad-period"),
        pytest.param(["--period", "2026"], "--server", id="neither-source"),
        pytest.param(["--period", "2026", "--input", str(CLINIC), "--server",
                      "http://127.0.0.1:9/fhir"], "--server", id="both-sources"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], hint: str) -> None:
    result = CliRunner().invoke(app, ["report", *args, "--output", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and hint in result.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("text", "period"),
    [
        pytest.param("2026", Period(date(2026, 1, 1), date(2026, 12, 31)), id="year"),
        pytest.param("2026-Q1", Period(date(2026, 1, 1), date(2026, 3, 31)), id="q1"),
        pytest.param("2026-Q4", Period(date(2026, 10, 1), date(2026, 12, 31)), id="q4"),
        pytest.param("2026-02", Period(date(2026, 2, 1), date(2026, 2, 28)), id="february"),
        pytest.param("2026-12", Period(date(2026, 12, 1), date(2026, 12, 31)), id="december"),
        pytest.param("2026-09-01..2026-11-30", Period(date(2026, 9, 1), date(2026, 11, 30)),
                     id="range"),
    ],
)
def test_parse_period(text: str, period: Period) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["2026-Q0", "2026-13", "2026-11-30..2026-09-01", "Q3", ""])
def test_parse_period_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        pytest.param("=HYPERLINK(1)", "'=HYPERLINK(1)", id="formula"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("-5", "-5", id="negative-number"),
        pytest.param(None, "", id="none"),
        pytest.param(12.5, "12.5", id="number"),
    ],
)
def test_csv_cells_never_run_as_formulas(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_measures_per_rate_as_the_measure_command_counts_them(tmp_path: Path) -> None:
    # bhi-fhir measure --period 2026 --input examples/clinic: CMS2 15 / 0, DSF-E screening
    # 15 / 15, DSF-E follow-up 15 / 13 (the measures' own populations, all 66 patients read)
    code, text, output = run_report(tmp_path, "json", period="2026")
    assert code == 0, output
    rows = {r[0].split(" ", 1)[0]: r[1:] for r in _metric(json.loads(text), "measures")["rows"]}
    assert rows["CMS2"] == [15, 0, 0.0]
    assert rows["DSF-E/screening"] == [15, 15, 100.0]
    assert rows["DSF-E/follow-up"] == [15, 13, 86.7]
    assert set(rows) >= {"CMS159", "DMS-E/period-1", "DRR-E/remission"}


def test_a_bad_input_line_exits_65_after_the_rest_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for path in CLINIC.glob("*.ndjson"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "Broken.ndjson").write_text("{not json\n", encoding="utf-8")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "report", "--period", "2026-Q4", "--input", str(folder), "--plan", str(PLAN),
        "--today", "2026-11-26", "--format", "json", "--output", str(out)])
    assert result.exit_code == EXIT_DATAERR
    assert "error:" in result.output and "Broken.ndjson" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))["enrolledPatients"] == 13
