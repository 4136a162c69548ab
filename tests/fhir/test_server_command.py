"""with_server_auth puts the seven auth options where a command declares ``credentials`` and
hands it one AuthSettings; exit_on_failed_request turns a failed request into one stderr line
and its exit code."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from bhi_fhir.exit_codes import EXIT_NOPERM, EXIT_UNAVAILABLE
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.errors import FhirError, Forbidden, RequestTimeout

seen: list[AuthSettings] = []


@with_server_auth
def toy(
    server: Annotated[str, typer.Option("--server")],
    credentials: AuthSettings = NO_AUTH,
    timeout: Annotated[float, typer.Option()] = 1.0,
) -> None:
    seen.append(credentials)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("toy")(toy)
    app.command("other")(lambda: None)  # two commands: "toy" stays a sub-command
    return app


def test_the_options_stand_where_credentials_was() -> None:
    from typer.main import get_command

    names = [p.name for p in get_command(_app()).commands["toy"].params]  # type: ignore[attr-defined]
    assert names == ["server", "token", "client_id", "private_key", "jwks_url", "scope",
                     "token_url", "kid", "timeout"]


def test_the_command_gets_one_value_from_options_and_environment() -> None:
    seen.clear()
    result = CliRunner().invoke(
        _app(), ["toy", "--server", "https://ehr.test/fhir", "--client-id", "bhi",
                 "--timeout", "2"],
        env={"BHI_FHIR_KID": "k1", "BHI_FHIR_TOKEN": ""},
    )
    assert result.exit_code == 0, result.output
    assert seen == [AuthSettings(client_id="bhi", kid="k1")]


def _fail(err: FhirError, hint: str | None = None) -> None:
    with exit_on_failed_request("error: toy failed: ", retry_hint=hint):
        raise err


@pytest.mark.parametrize(
    ("err", "hint", "code", "lines"),
    [
        (Forbidden("403 scope"), "again", EXIT_NOPERM, ["error: toy failed: 403 scope"]),
        (RequestTimeout("slow"), "again", EXIT_UNAVAILABLE, ["error: toy failed: slow", "again"]),
        (RequestTimeout("slow"), None, EXIT_UNAVAILABLE, ["error: toy failed: slow"]),
    ],
    ids=["fatal-no-hint", "transient-with-hint", "transient-without-hint"],
)
def test_a_failed_request_is_one_line_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], err: FhirError, hint: str | None, code: int,
    lines: list[str],
) -> None:
    with pytest.raises(typer.Exit) as stop:
        _fail(err, hint)
    assert stop.value.exit_code == code
    assert capsys.readouterr().err.splitlines() == lines
