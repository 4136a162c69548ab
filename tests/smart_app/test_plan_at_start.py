"""The app reads the practice plan once, when it is created: a plan that cannot be used stops
``bhi-fhir serve`` with the plan's own errors (exit 78) instead of failing the first page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import app as cli_app
from bhi_fhir.exit_codes import EXIT_CONFIG
from bhi_fhir.practice_plan import PracticePlanError
from smart_app.config import Settings
from smart_app.main import create_app


@pytest.fixture
def bad_plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text("[team]\ncare_managers = 3\n", encoding="utf-8")
    return path


def test_create_app_refuses_a_plan_that_cannot_be_used(bad_plan: Path) -> None:
    with pytest.raises(PracticePlanError):
        create_app(Settings(practice_plan=bad_plan, cookie_secure=False))


def test_serve_exits_2_naming_the_plan_before_listening(
    bad_plan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    monkeypatch.setenv("BHI_APP_PRACTICE_PLAN", str(bad_plan))
    from smart_app.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "serve refused" in result.output and str(bad_plan) in result.output
    assert started == []


def test_a_usable_plan_is_what_the_pages_use(tmp_path: Path) -> None:
    from bhi_fhir.paths import examples_dir

    app = create_app(Settings(practice_plan=examples_dir() / "practice-plan.toml",
                              cookie_secure=False))
    assert app.state.practice_plan is not None
    assert app.state.practice_plan.team.care_managers
