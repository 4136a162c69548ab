"""``bhi-fhir registry --server URL --state-url URL``: build the registry read model from the EHR.

The app builds the model on its first registry view and ``sync``, the notification receiver and
the app's own writes keep the rows they touch current. Figures that move with the calendar
(weeks in treatment, days without contact, this month's minutes) are as of the day a row was
computed, so a practice runs this once a night (cron, a scheduler) to recompute every row for
the new day, and once before go-live so no clinician waits for the first build.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.command_options import load_plan, open_store, parse_today
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.registry.model import build_registry


@with_server_auth
def registry_command(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL (the app's iss)")],
    state_url: Annotated[
        str | None,
        typer.Option("--state-url",
                     help="operational store the app reads (SQLAlchemy URL) [env: "
                     "BHI_STATE_URL; default: the state file]"),
    ] = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="practice plan TOML")] = None,
    today: Annotated[
        str | None,
        typer.Option("--today", help="YYYY-MM-DD (default: today in the plan's billing.timezone)"),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json")] = (
        OutputFormat.text
    ),
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
) -> None:
    """Build (or rebuild) the registry read model: every enrolled patient's row for today."""
    offered(output, OutputFormat.json)
    checked_server(server)
    practice = load_plan(plan)
    day = parse_today(today) or practice.today()
    auth = credentials.for_command(server, write=False)
    store = open_store(state_url)

    async def run() -> int:
        async with FhirClient(server, auth=auth, timeout=timeout) as fhir:
            rows = await build_registry(store, server, fhir, today=day, plan=practice)
        return len(rows)

    try:
        with exit_on_failed_request(f"error: registry build from {server} failed: "):
            count = asyncio.run(run())
    finally:
        store.close()
    if output == "json":
        typer.echo(json.dumps({"server": server, "day": day.isoformat(), "rows": count}))
    else:
        typer.echo(f"registry built for {day.isoformat()}: {count} enrolled patients")
