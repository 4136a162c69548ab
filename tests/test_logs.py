"""Logging set up once: -v/-q levels, text or JSON lines on stderr, URL loggers kept quiet,
and ``serve`` handing the same choice to uvicorn."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir import __version__, logs
from bhi_fhir.cli import _register, app


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [(-1, logging.ERROR), (0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG),
     (3, logging.DEBUG)],
    ids=["quiet", "default-warnings", "v-info", "vv-debug", "vvv-still-debug"],
)
def test_level_for_verbosity(verbosity: int, level: int) -> None:
    assert logs.level_for(verbosity) == level


def test_configure_twice_installs_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0)
    logs.configure(1)
    logging.getLogger("bhi_fhir.test").info("one event")
    err = capsys.readouterr().err
    assert err.count("one event") == 1
    assert "INFO bhi_fhir.test: one event" in err


@pytest.mark.parametrize("verbosity", [0, 1, 2], ids=["default", "v", "vv"])
def test_url_loggers_stay_at_warning(verbosity: int, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(verbosity)
    logging.getLogger("httpx").info("GET https://ehr/fhir/Patient?_id=p1")
    logging.getLogger("httpcore").debug("send_request_headers Patient?_id=p1")
    assert "p1" not in capsys.readouterr().err


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0, logs.LogFormat.json)
    logging.getLogger("bhi_fhir.fhir.client").warning("fhir GET %s → %s", "Patient", 503)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "bhi_fhir.fhir.client"
    assert entry["message"] == "fhir GET Patient → 503"
    assert entry["time"].endswith("+00:00")


def test_json_lines_carry_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("bhi_fhir", logging.ERROR, __file__, 1, "failed", None,
                                   exc_info=__import__("sys").exc_info())
    entry = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_handler_follows_a_replaced_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """A handler set up under a test runner's stderr keeps writing after it is swapped back."""
    logs.configure(0)
    CliRunner().invoke(app, ["--help"])  # CliRunner swaps sys.stderr in and out
    logging.getLogger("bhi_fhir.test").warning("after the runner")
    assert "after the runner" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "shown", "hidden"),
    [([], ["a warning"], ["an event"]),
     (["-v"], ["a warning", "an event"], []),
     (["-q"], [], ["a warning", "an event"])],
    ids=["default", "verbose", "quiet"],
)
def test_global_options_set_the_level(
    options: list[str], shown: list[str], hidden: list[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import bhi_fhir.instruments.cli as score_cli

    def logging_score(*args: Any, **kwargs: Any) -> Iterator[Any]:
        logging.getLogger("bhi_fhir.instruments").warning("a warning")
        logging.getLogger("bhi_fhir.instruments").info("an event")
        return iter(())

    _register()
    monkeypatch.setattr(score_cli, "score_paths", logging_score)
    result = CliRunner().invoke(app, [*options, "score", "--format", "json", str(tmp_path)])
    for text in shown:
        assert text in result.stderr
    for text in hidden:
        assert text not in result.stderr


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bhi-fhir {__version__}"


def test_serve_json_logs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    _register()
    assert CliRunner().invoke(app, ["--log-format", "json", "serve"]).exit_code == 0
    logging.config.dictConfig(started[0]["log_config"])  # what uvicorn does at start-up
    logging.getLogger("bhi_fhir.sync.webhook").info("notification accepted (counts)")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert entries[0]["logger"] == "bhi_fhir.sync.webhook"
    assert entries[0]["message"] == "notification accepted (counts)"
    assert entries[1]["message"] == "Application startup complete."


def test_serve_quiet_keeps_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    _register()
    assert CliRunner().invoke(app, ["-q", "serve"]).exit_code == 0
    assert started[0]["log_config"]["loggers"]["smart_app"]["level"] == "WARNING"


@pytest.mark.parametrize(
    ("fmt", "tty", "service", "resolved"),
    [(logs.LogFormat.auto, True, False, logs.LogFormat.text),
     (logs.LogFormat.auto, False, False, logs.LogFormat.json),
     (logs.LogFormat.auto, True, True, logs.LogFormat.json),
     (logs.LogFormat.text, False, True, logs.LogFormat.text),
     (logs.LogFormat.json, True, False, logs.LogFormat.json)],
    ids=["terminal-text", "unattended-json", "serve-json", "text-forced", "json-forced"],
)
def test_auto_format(fmt: logs.LogFormat, tty: bool, service: bool, resolved: logs.LogFormat,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert logs.resolve(fmt, service=service) is resolved


def test_a_terminal_gets_rich_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    logs.configure(0, logs.LogFormat.auto)
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs.RichStderrHandler)]
    assert len(ours) == 1 and not ours[0].markup  # input text is never read as markup
    logs.configure(0, logs.LogFormat.json)  # replaced, not added to
    assert not any(isinstance(h, logs.RichStderrHandler) for h in logging.getLogger().handlers)


def _named_clinic(folder: Path) -> tuple[Path, list[str]]:
    """The bundled clinic with a name, phone and address on every Patient: what must never
    reach a log line, with the patients' ids and birth dates."""
    clinic = Path(__file__).resolve().parents[1] / "examples" / "clinic"
    secrets: list[str] = []
    for source in clinic.glob("*.ndjson"):
        lines = source.read_text().splitlines()
        if source.name == "Patient.ndjson":
            named = []
            for n, line in enumerate(lines):
                patient = json.loads(line)
                family, given = f"Quarrington{n:04d}", f"Zebediah{n:04d}"
                patient["name"] = [{"family": family, "given": [given]}]
                patient["telecom"] = [{"system": "phone", "value": f"555-01{n:04d}"}]
                secrets += [family, given, f"555-01{n:04d}", patient["id"], patient["birthDate"]]
                named.append(json.dumps(patient))
            lines = named
        (folder / source.name).write_text("\n".join(lines) + "\n")
    (folder / "Broken.ndjson").write_text('{"resourceType": "Patient", "id": "p-broken", "name":'
                                          ' [{"family": "Brokenname"}]\n')
    return folder, secrets


@pytest.mark.parametrize(
    "command",
    [["apply", "{clinic}", "--plan", "{plan}", "--today", "2026-10-15"],
     ["score", "{clinic}"],
     ["bill", "--month", "2026-09", "--input", "{clinic}", "--plan", "{plan}"]],
    ids=["apply", "score", "bill"],
)
def test_no_patient_data_in_a_file_runs_log_lines(command: list[str], tmp_path: Path) -> None:
    """At -vv (every event and request) the run's log lines name no patient: no id, name,
    phone or birth date from the input, even for a line it could not read."""
    folder, secrets = _named_clinic(tmp_path)
    plan = Path(__file__).resolve().parents[1] / "examples" / "practice-plan.toml"
    args = [a.format(clinic=folder, plan=plan) for a in command]
    result = CliRunner().invoke(app, ["-vv", "--log-format", "json", *args])
    assert result.exit_code in (0, 65), result.output
    log_lines = []
    for line in result.stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the command's own `error: file:line` report, not a log line
        if isinstance(entry, dict) and "logger" in entry:
            log_lines.append(line)
    text = "\n".join(log_lines)
    leaked = [s for s in [*secrets, "p-broken", "Brokenname"] if s in text]
    assert not leaked, leaked[:5]


def test_no_patient_id_in_a_sync_runs_log_lines(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync at -vv logs every request (method, type, status, time) and the run's events;
    none of its lines names a patient or a response, though every request is about one."""
    import respx

    from bhi_fhir.fhir import _retry
    from tests.sync.test_runner import BASE, TODAY, FakeServer, _qr

    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr(_retry, "sleep", no_sleep)
    server = FakeServer(0)
    server.responses = [_qr(f"Patient/zq-secret-{i}", f"qr-secret-{i}") for i in range(3)]
    server.transaction_statuses = [503, 400]  # a retry and a refusal: warnings are logged too
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.route().mock(side_effect=server)
        result = CliRunner().invoke(app, [
            "-vv", "--log-format", "json", "sync", "--server", BASE, "--state-url",
            f"sqlite:///{tmp_path / 's.db'}", "--today", TODAY.isoformat(), "--format", "json",
        ])
    assert result.exit_code in (0, 1), result.output
    log_lines = [line for line in result.stderr.splitlines() if line.startswith('{"time"')]
    assert len(log_lines) > 5, result.stderr  # every request is logged at -vv
    assert not [line for line in log_lines if "secret" in line], log_lines
