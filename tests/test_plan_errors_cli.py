"""A practice plan that cannot be used stops every command taking ``--plan`` (apply, bill,
sync) with one ``error:`` line on stderr naming the file and the problem, exit 78 (configuration),
before any work: no traceback, no run that fails later."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.exit_codes import EXIT_CONFIG

_register()
EXAMPLE_PLAN = Path(__file__).resolve().parents[1] / "examples" / "practice-plan.toml"
SERVER = "http://127.0.0.1:9/fhir"  # never reached: the plan is checked first


def _bad_plans(tmp: Path) -> dict[str, tuple[Path, str]]:
    zone = tmp / "zone.toml"
    zone.write_text(
        EXAMPLE_PLAN.read_text().replace('timezone = "America/New_York"', 'timezone = "Mars/Base"')
    )
    binary = tmp / "binary.toml"
    binary.write_bytes(b'practice = "\xff\xfe"\n')
    deep = tmp / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    return {
        "unknown-timezone": (zone, "billing.timezone: unknown time zone 'Mars/Base'"),
        "not-utf8": (binary, "not UTF-8 text"),
        "deeply-nested": (deep, "nested too deeply"),
    }


PLAN_COMMANDS = {
    "apply": lambda plan, tmp: ["apply", str(tmp / "none.ndjson"), "--plan", str(plan)],
    "bill": lambda plan, tmp: [
        "bill", "--month", "2020-01", "--input", str(tmp / "none.ndjson"), "--plan", str(plan),
    ],
    "sync": lambda plan, tmp: [
        "sync", "--server", SERVER, "--state-url", f"sqlite:///{tmp / 's.db'}", "--plan", str(plan),
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", list(PLAN_COMMANDS), ids=list(PLAN_COMMANDS))
@pytest.mark.parametrize("case", ["unknown-timezone", "not-utf8", "deeply-nested"])
def test_a_plan_that_cannot_be_used_is_one_configuration_line(
    command: str, case: str, tmp_path: Path
) -> None:
    plan, says = _bad_plans(tmp_path)[case]
    (tmp_path / "none.ndjson").write_text("")
    result = CliRunner().invoke(app, PLAN_COMMANDS[command](plan, tmp_path))
    assert result.exit_code == EXIT_CONFIG, result.output
    line = _one_error_line(result)
    assert says in line and str(plan) in line


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]
