"""``bhi-fhir doctor`` against the real server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app

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


def test_doctor_reports_a_ready_server(fhir_base_url: str) -> None:
    result = CliRunner().invoke(app, doctor_args("--server", fhir_base_url, "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert report["transaction"] is True
    assert report["fhir_version"].startswith("4.0")


def test_doctor_table(fhir_base_url: str) -> None:
    result = CliRunner().invoke(app, doctor_args("--server", fhir_base_url))
    assert result.exit_code == 0, result.output
    assert "transaction" in result.stdout
