"""Each command's exit codes through the command line (bhi_fhir.exit_codes' table): 2 usage,
65 input that is not FHIR the command reads (the rest still processed), 69 a server that does
not answer or still fails after the retries, 78 a practice plan that cannot be used."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.exit_codes import EXIT_CONFIG, EXIT_DATAERR, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLAN = EXAMPLES / "practice-plan.toml"
BASE = "http://fhir.exit.test/fhir"

Args = Callable[[Path], list[str]]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """One good PHQ-9 response, then a line that is not JSON; a plan that cannot be used."""
    good = {
        "resourceType": "QuestionnaireResponse", "id": "qr-1", "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1", "subject": {"reference": "Patient/p1"},
        "authored": "2026-10-01",
        "item": [{"linkId": f"/4473{n}-{n}", "answer": [{"valueInteger": 1}]}
                 for n in range(9)],
    }  # fmt: skip
    (tmp_path / "bad.ndjson").write_text(json.dumps(good) + "\n{not json\n")
    (tmp_path / "empty.ndjson").write_text("")
    (tmp_path / "plan.toml").write_text("[team]\ncare_managers = 3\n")
    return tmp_path


COMMANDS: dict[str, tuple[Args, int]] = {
    # command with input that is not FHIR: the rest is processed, the run says 65
    "score-bad-line": (lambda t: ["score", str(t / "bad.ndjson")], EXIT_DATAERR),
    "apply-bad-line": (
        lambda t: ["apply", str(t / "bad.ndjson"), "--plan", str(PLAN), "--today", "2026-10-02"],
        EXIT_DATAERR),
    "bill-input-bad-line": (
        lambda t: ["bill", "--month", "2026-10", "--input", str(t / "bad.ndjson"),
                   "--plan", str(PLAN)], EXIT_DATAERR),
    "measure-bad-line": (
        lambda t: ["measure", "--period", "2026", "--input", str(t / "bad.ndjson")],
        EXIT_DATAERR),
    # a practice plan that cannot be used: 78 before any work
    "score-bad-plan": (lambda t: ["score", str(t / "empty.ndjson"), "--plan",
                                  str(t / "plan.toml")], EXIT_CONFIG),
    "apply-bad-plan": (lambda t: ["apply", str(t / "empty.ndjson"), "--plan",
                                  str(t / "plan.toml")], EXIT_CONFIG),
    "bill-bad-plan": (lambda t: ["bill", "--month", "2026-10", "--input",
                                 str(t / "empty.ndjson"), "--plan", str(t / "plan.toml")],
                      EXIT_CONFIG),
    "sync-bad-plan": (lambda t: ["sync", "--server", BASE, "--state-url",
                                 f"sqlite:///{t / 's.db'}", "--plan", str(t / "plan.toml")],
                      EXIT_CONFIG),
    "registry-bad-plan": (lambda t: ["registry", "--server", BASE, "--state-url",
                                     f"sqlite:///{t / 's.db'}", "--plan", str(t / "plan.toml")],
                          EXIT_CONFIG),
    "doctor-bad-plan": (lambda t: ["doctor", "--server", BASE, "--plan", str(t / "plan.toml")],
                        EXIT_CONFIG),
    # a --server that is not a URL: configuration
    "sync-bad-url": (lambda t: ["sync", "--server", "fhir.example"], EXIT_CONFIG),
    # usage: Click's own 2
    "score-bad-format": (lambda t: ["score", str(t / "empty.ndjson"), "--format", "xml"],
                         EXIT_USAGE),
    "bill-no-source": (lambda t: ["bill", "--month", "2026-10"], EXIT_USAGE),
    "apply-no-plan": (lambda t: ["apply", str(t / "empty.ndjson")], EXIT_USAGE),
    "sync-unknown-option": (lambda t: ["sync", "--server", BASE, "--nope"], EXIT_USAGE),
    # clean input: 0
    "score-clean": (lambda t: ["score", str(t / "empty.ndjson")], EXIT_OK),
}


@pytest.mark.parametrize("case", list(COMMANDS), ids=list(COMMANDS))
def test_exit_code_of_each_command(case: str, files: Path) -> None:
    args, code = COMMANDS[case]
    result = CliRunner().invoke(app, args(files))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


@pytest.fixture
def failing_server() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


SERVER_COMMANDS: dict[str, Args] = {
    "sync": lambda t: ["sync", "--server", BASE, "--state-url", f"sqlite:///{t / 's.db'}",
                       "--today", "2026-10-02", "--max-retries", "0"],
    "doctor": lambda t: ["doctor", "--server", BASE],
    "bill": lambda t: ["bill", "--month", "2026-10", "--server", BASE, "--dry-run"],
    "measure": lambda t: ["measure", "--period", "2026", "--server", BASE],
    "subscribe": lambda t: ["subscribe", "--server", BASE, "--endpoint",
                            "https://app.example/fhir-notify", "--secret", "s"],
    "registry": lambda t: ["registry", "--server", BASE, "--state-url",
                           f"sqlite:///{t / 's.db'}", "--today", "2026-10-02"],
    "export": lambda t: ["export", "--server", BASE, "--out", str(t / "export")],
}
FAULTS = {
    "unreachable": httpx.ConnectError("Connection refused"),
    "503-after-retries": httpx.Response(503),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
@pytest.mark.parametrize("command", list(SERVER_COMMANDS), ids=list(SERVER_COMMANDS))
def test_a_server_that_does_not_answer_is_69(
    command: str, fault: str, failing_server: respx.MockRouter, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bhi_fhir.fhir import _retry

    async def no_wait(delay: float) -> None:
        return None

    monkeypatch.setattr(_retry, "sleep", no_wait)  # the retries' back-off, not waited out
    answer = FAULTS[fault]
    if isinstance(answer, Exception):
        failing_server.route().mock(side_effect=answer)
    else:
        failing_server.route().mock(return_value=answer)
    result = CliRunner().invoke(app, SERVER_COMMANDS[command](tmp_path))
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "Traceback" not in result.output


def test_serve_demo_with_ehr_settings_is_78(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setenv("BHI_NOTIFY_SERVER", "https://ehr.example/fhir")
    result = CliRunner().invoke(app, ["serve", "--demo"])
    assert result.exit_code == EXIT_CONFIG, result.output
