"""``bhi-fhir doctor`` against the real server.

A fresh HAPI has none of the practice plan's Practitioners, PractitionerRoles and
Organizations: the ``plan_resources`` fixture (conftest) PUTs the bundled plan's references.
HAPI has no SMART: the doctor says backend services are not available and is still ready
for unauthenticated use.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir.doctor_data import SCREENING_TOTAL_CODES
from bhi_fhir.fhir.errors import EXIT_CONFIG
from bhi_fhir.sync.runner import default_plan_path

pytestmark = pytest.mark.integration

_register()


def doctor_args(*args: str) -> list[str]:
    """Typer collapses a one-command app; name the command only when it is a group."""
    single = (
        len(app.registered_commands) == 1
        and not app.registered_groups
        and app.registered_callback is None
    )
    return list(args) if single else ["doctor", *args]


def test_doctor_reports_a_ready_server(fhir_base_url: str, plan_resources: list[str]) -> None:
    result = CliRunner().invoke(app, doctor_args("--server", fhir_base_url, "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert report["transaction"] is True
    assert report["fhir_version"].startswith("4.0")
    assert report["plan"] == {"references": len(plan_resources), "missing": [], "unverified": {}}
    assert isinstance(report["screening"]["questionnaire_responses"], int)
    assert set(report["screening"]["observations"]) == set(SCREENING_TOTAL_CODES)
    assert report["screening"]["problems"] == []
    checks = {c["name"]: c for c in report["checks"]}
    smart = checks["SMART backend services"]
    assert smart["status"] == "skip"
    assert smart["detail"].startswith("not available")


def test_doctor_fails_on_a_plan_reference_the_server_lacks(
    fhir_base_url: str, plan_resources: list[str], tmp_path: Path
) -> None:
    absent = f"Practitioner/absent-{uuid.uuid4().hex[:12]}"
    plan = default_plan_path().read_text().replace('"Practitioner/psych-nguyen"', f'"{absent}"')
    (tmp_path / "plan.toml").write_text(plan)
    args = ("--server", fhir_base_url, "--format", "json", "--plan", str(tmp_path / "plan.toml"))
    result = CliRunner().invoke(app, doctor_args(*args))
    assert result.exit_code == EXIT_CONFIG, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is False
    assert [m["reference"] for m in report["plan"]["missing"]] == [absent]


def test_doctor_table(fhir_base_url: str, plan_resources: list[str]) -> None:
    result = CliRunner().invoke(app, doctor_args("--server", fhir_base_url))
    assert result.exit_code == 0, result.output
    assert "transaction" in result.stdout
