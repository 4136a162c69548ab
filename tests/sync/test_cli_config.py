"""Configuration mistakes on the command line: one ``error:`` line on stderr, no traceback, and
the exit code that tells a scheduler "fix it" (78), "try later" (69) or "bad input" (65).

Every command that takes ``--server`` (sync, bill, doctor, subscribe) checks it the same way;
``--state-url`` (sync) likewise.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir.errors import EXIT_CONFIG, EXIT_UNAVAILABLE

_register()
GOOD = "http://127.0.0.1:9/fhir"  # never reached: every case stops before any request

COMMANDS = {
    "sync": ["sync"],
    "bill": ["bill", "--month", "2020-01", "--dry-run"],
    "doctor": ["doctor"],
    "subscribe": ["subscribe", "--endpoint", "https://app.example/fhir-notify"],
}


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
@pytest.mark.parametrize(
    ("server", "says"),
    [
        ("ftp://ehr.example/fhir", "not an http(s) URL"),
        ("ehr.example/fhir", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("http://[bad", "not a URL"),
    ],
    ids=["unsupported-scheme", "no-scheme", "no-host", "unparseable"],
)
def test_a_bad_server_url_is_one_configuration_line(command: str, server: str, says: str) -> None:
    result = CliRunner().invoke(app, [*COMMANDS[command], "--server", server])
    assert result.exit_code == EXIT_CONFIG, result.output
    line = _one_error_line(result)
    assert says in line and "--server" in line
    assert "retried" not in line  # a mistyped URL is not transient


@pytest.mark.parametrize(
    ("state_url", "says"),
    [
        ("foo://bar", "scheme 'foo' is not a supported database"),
        ("not a url", "not a database URL"),
        ("sqlite:////dev/null/state.db", "cannot create its folder"),
    ],
    ids=["unknown-dialect", "unparseable", "unwritable-sqlite-path"],
)
@pytest.mark.parametrize("extra", [[], ["--failed"]], ids=["sync", "sync-failed"])
def test_a_bad_state_url_is_one_configuration_line(
    state_url: str, says: str, extra: list[str]
) -> None:
    result = CliRunner().invoke(
        app, ["sync", "--server", GOOD, "--state-url", state_url, *extra]
    )
    assert result.exit_code == EXIT_CONFIG, result.output
    assert says in _one_error_line(result)


def test_a_state_database_that_does_not_answer_is_transient_and_hides_the_password() -> None:
    url = "postgresql+psycopg://bhi:s3cret@127.0.0.1:9/bhi"  # port 9 (discard): refused
    result = CliRunner().invoke(app, ["sync", "--server", GOOD, "--state-url", url])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    line = _one_error_line(result)
    assert "cannot open the state store" in line
    assert "s3cret" not in result.output
