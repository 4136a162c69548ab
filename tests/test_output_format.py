"""One --format type for every command (bhi_fhir.output.OutputFormat): table and text are the
one format for people, json is offered everywhere, csv where a command has rows; a format a
command does not offer is a usage error (exit 2) before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.exit_codes import EXIT_OK, EXIT_USAGE
from bhi_fhir.output import OutputFormat, offered

PLAN = Path(__file__).resolve().parents[1] / "examples" / "practice-plan.toml"
SERVER = "http://127.0.0.1:9/fhir"  # never reached: the format is checked first


def _commands(tmp: Path) -> dict[str, list[str]]:
    (tmp / "none.ndjson").write_text("")
    return {
        "score": ["score", str(tmp / "none.ndjson")],
        "apply": ["apply", str(tmp / "none.ndjson"), "--plan", str(PLAN), "--today",
                  "2026-10-02"],
        "bill": ["bill", "--month", "2026-10", "--input", str(tmp / "none.ndjson"), "--plan",
                 str(PLAN)],
        "measure": ["measure", "--period", "2026", "--input", str(tmp / "none.ndjson")],
        "sync": ["sync", "--server", SERVER],
        "doctor": ["doctor", "--server", SERVER],
        "export": ["export", "--server", SERVER, "--out", str(tmp / "out")],
        "registry": ["registry", "--server", SERVER],
    }


OFFERS_CSV = {"bill", "measure"}


@pytest.mark.parametrize("command", ["score", "apply", "bill", "measure", "sync", "doctor",
                                     "export", "registry"])
def test_csv_only_where_offered(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*_commands(tmp_path)[command], "--format", "csv"])
    if command in OFFERS_CSV:
        assert result.exit_code == EXIT_OK, result.output
    else:
        assert result.exit_code == EXIT_USAGE, result.output
        assert "not offered here" in result.output


@pytest.mark.parametrize("command", ["score", "apply", "bill", "measure"])
@pytest.mark.parametrize("fmt", ["table", "text"])
def test_table_and_text_are_one_format(command: str, fmt: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*_commands(tmp_path)[command], "--format", fmt])
    assert result.exit_code == EXIT_OK, result.output


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*_commands(tmp_path)["score"], "--format", "xml"])
    assert result.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("fmt", "machine", "ok"),
    [(OutputFormat.table, (), True), (OutputFormat.text, (), True),
     (OutputFormat.json, (OutputFormat.json,), True), (OutputFormat.json, (), False),
     (OutputFormat.csv, (OutputFormat.json,), False)],
    ids=["table", "text", "json-offered", "json-not-offered", "csv-not-offered"],
)
def test_offered(fmt: OutputFormat, machine: tuple[OutputFormat, ...], ok: bool) -> None:
    import typer

    if ok:
        assert offered(fmt, *machine) is fmt
    else:
        with pytest.raises(typer.BadParameter):
            offered(fmt, *machine)


@pytest.mark.parametrize(
    ("fmt", "written"),
    [(OutputFormat.json, '{\n  "a": 1\n}\n'), (OutputFormat.csv, "a\n1\n"),
     (OutputFormat.table, "[b]ref[/b] :100:\n")],
    ids=["json-indented", "csv-as-given", "people-literal-text"],
)
def test_write_output_builds_only_what_is_written(
    fmt: OutputFormat, written: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bhi_fhir.output import write_output

    built: list[str] = []

    def document() -> dict[str, int]:
        built.append("json")
        return {"a": 1}

    def csv() -> str:
        built.append("csv")
        return "a\n1\n"

    write_output(fmt, document=document, csv=csv,
                 people=lambda console: console.print("[b]ref[/b] :100:"))
    assert capsys.readouterr().out == written
    assert built == ([] if fmt.for_people else [str(fmt)])


@pytest.mark.parametrize("command", ["score", "apply", "bill", "measure", "sync", "doctor",
                                     "export", "registry"])
def test_html_is_the_report_files_only(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*_commands(tmp_path)[command], "--format", "html"])
    assert result.exit_code == EXIT_USAGE, result.output


def test_the_report_writes_files_only(tmp_path: Path) -> None:
    args = ["report", "--period", "2026", "--input", str(tmp_path / "none.ndjson"),
            "--output", str(tmp_path / "r.txt")]
    (tmp_path / "none.ndjson").write_text("")
    result = CliRunner().invoke(app, [*args, "--format", "table"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "html, csv, json" in result.output
    assert CliRunner().invoke(app, [*args, "--format", "csv", "--plan", str(PLAN)]).exit_code \
        == EXIT_OK
