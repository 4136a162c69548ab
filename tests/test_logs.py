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
