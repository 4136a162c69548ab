"""``bhi-fhir registry``: bad input stops before any request, with the project's exit codes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.exit_codes import EXIT_CONFIG


def test_an_unusable_plan_exits_78_before_any_request(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[team]\ncare_managers = 3\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["registry", "--server", "http://127.0.0.1:9/fhir",
                                      "--state-url", f"sqlite:///{tmp_path / 's.db'}",
                                      "--plan", str(plan)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert not (tmp_path / "s.db").exists()


def test_a_bad_today_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["registry", "--server", "http://127.0.0.1:9/fhir",
                                      "--state-url", f"sqlite:///{tmp_path / 's.db'}",
                                      "--today", "26/11/2026"])
    assert result.exit_code == 2 and "--today" in result.output
