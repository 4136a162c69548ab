"""``bhi-fhir serve`` sends the app's own log lines (the notification queue, the receiver, the
launch) to stderr — they were dropped before (no handler) — and keeps the URL loggers quiet."""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register
from bhi_fhir.cli import app as cli_app


def test_serve_logs_the_receivers_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    _register()
    assert CliRunner().invoke(cli_app, ["serve"]).exit_code == 0
    logging.config.dictConfig(started[0]["log_config"])  # what uvicorn does at start-up
    logging.getLogger("bhi_fhir.sync.webhook").info("notification accepted (counts)")
    logging.getLogger("bhi_fhir.sync.queue").warning("queue overflow (counts)")
    logging.getLogger("smart_app.launch").info("launch: EHR launch")
    logging.getLogger("httpx").info("GET https://ehr/fhir/Patient?_id=p1")
    err = capsys.readouterr().err
    # A service logs JSON lines by default (--log-format auto).
    entries = {(e["logger"], e["message"]) for e in map(json.loads, err.splitlines())}
    assert ("bhi_fhir.sync.webhook", "notification accepted (counts)") in entries
    assert ("bhi_fhir.sync.queue", "queue overflow (counts)") in entries
    assert ("smart_app.launch", "launch: EHR launch") in entries
    assert "Patient?_id=p1" not in err  # URL loggers stay at WARNING (ids in queries)
