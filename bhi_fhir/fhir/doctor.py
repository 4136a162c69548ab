"""``bhi-fhir doctor --server URL``: can this FHIR server run the BHI workflow?

Integration engineers run this first against a new EHR or sandbox. It reads the server's
CapabilityStatement and SMART configuration (two requests, read-only) and prints what works,
what the sync will skip and why. Exit 0 when the workflow can run, 78 (EX_CONFIG) when the
server cannot support it, and the error's own exit code (e.g. 69 unreachable) when the
server could not be asked at all — one line on stderr, no traceback.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bhi_fhir.cli import app
from bhi_fhir.fhir.auth import BearerAuth
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.errors import EXIT_CONFIG, FhirError, exit_code_for
from bhi_fhir.fhir.profile import ServerProfile

_STYLE = {"ok": "green", "warn": "yellow", "skip": "dim", "fail": "bold red"}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


async def _fetch_profile(server: str, token: str | None, timeout: float) -> ServerProfile:
    # A diagnosis should be quick: two retries, not five, and a short backoff ceiling.
    auth = BearerAuth(token) if token else None
    async with FhirClient(
        server, auth=auth, timeout=timeout, max_retries=2, backoff_max=5
    ) as client:
        return await ServerProfile.fetch(client)


def _render_table(profile: ServerProfile, console: Console) -> None:
    readiness = profile.readiness()
    table = Table(title=Text(f"FHIR server {profile.base_url}"))  # Text: no markup, no emoji
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for check in readiness.checks:
        table.add_row(check.name, f"[{_STYLE[check.status]}]{check.status}[/]", Text(check.detail))
    console.print(table)
    style = "green" if readiness.can_run else "bold red"
    console.print(f"[{style}]{readiness.summary}[/]")


@app.command("doctor")
def doctor(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL")],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for scripts")
    ] = OutputFormat.table,
    token: Annotated[
        str | None,
        typer.Option("--bearer-token", envvar="BHI_FHIR_TOKEN", help="static bearer token"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 15.0,
) -> None:
    """Check whether a FHIR server supports the BHI workflow, and what will be skipped."""
    try:
        profile = asyncio.run(_fetch_profile(server, token, timeout))
    except FhirError as err:
        typer.echo(f"error: cannot check {server}: {err}", err=True)
        raise typer.Exit(exit_code_for(err)) from None
    if output is OutputFormat.json:
        typer.echo(json.dumps(profile.to_dict(), indent=2))
    else:
        _render_table(profile, Console())
    if not profile.readiness().can_run:
        raise typer.Exit(EXIT_CONFIG)
