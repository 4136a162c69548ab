"""``bhi-fhir doctor`` against a mocked server: output, exit codes, unreachable server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import respx
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir import errors
from tests.fhir.capability import capability_statement
from tests.fhir.conftest import BASE

_register()


def doctor_args(*args: str) -> list[str]:
    """Typer collapses a one-command app; name the command only when it is a group."""
    single = (
        len(app.registered_commands) == 1
        and not app.registered_groups
        and app.registered_callback is None
    )
    return list(args) if single else ["doctor", *args]


@pytest.fixture
def server(sleeps: list[float]) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
        yield router


def test_doctor_is_registered() -> None:
    assert any(c.name == "doctor" for c in app.registered_commands)


def test_json_report_for_a_capable_server(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert report["transaction"] is True
    assert report["software"] == "HAPI FHIR Server 8.8.0"


def test_table_report(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    result = CliRunner().invoke(app, doctor_args("--server", BASE))
    assert result.exit_code == 0
    assert "search QuestionnaireResponse" in result.stdout
    assert "ready" in result.stdout


def test_unsupported_server_exits_non_zero(server: respx.MockRouter) -> None:
    cap = capability_statement(types=("Patient",), system=())
    server.get("/metadata").mock(return_value=httpx.Response(200, json=cap))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == errors.EXIT_CONFIG
    assert json.loads(result.stdout)["can_run"] is False


def test_unreachable_server_is_one_clear_line(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(side_effect=httpx.ConnectError("Connection refused"))
    result = CliRunner().invoke(app, doctor_args("--server", BASE))
    assert result.exit_code == errors.EXIT_UNAVAILABLE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot check {BASE}:")
    assert "fhir.test" in lines[0]
    assert "Traceback" not in result.output


def test_not_fhir_is_a_protocol_error(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    result = CliRunner().invoke(app, doctor_args("--server", BASE))
    assert result.exit_code == errors.EXIT_PROTOCOL
    assert "not JSON" in result.stderr


def test_unreachable_server_in_a_real_process_prints_one_line() -> None:
    """Outside pytest's log capture, retry warnings must not reach the terminal either.

    Port 9 (discard) on loopback refuses connections; the doctor retries twice, then exits.
    """
    command = [sys.executable, "-c", "from bhi_fhir.cli import main; main()"]
    command += doctor_args("--server", "http://127.0.0.1:9/fhir", "--timeout", "2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == errors.EXIT_UNAVAILABLE
    assert done.stderr.strip().splitlines() == [
        "error: cannot check http://127.0.0.1:9/fhir: GET /fhir/metadata: "
        "no response from http://127.0.0.1:9 (ConnectError)"
    ]


def test_server_text_is_shown_verbatim_not_as_markup_or_emoji() -> None:
    from rich.console import Console

    from bhi_fhir.fhir.doctor import _render_table
    from bhi_fhir.fhir.profile import ServerProfile

    profile = ServerProfile(base_url=BASE, fhir_version="4.0.1", software="[b]Evil[/b] :100:")
    console = Console(record=True, width=300)
    _render_table(profile, console)
    assert "[b]Evil[/b] :100:" in console.export_text()
