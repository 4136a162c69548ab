"""``bhi-fhir doctor --server URL``: can this FHIR server run the BHI workflow?

Integration engineers run this first against a new EHR or sandbox. It reads the server's
CapabilityStatement and SMART configuration, checks that the practice plan's Practitioners,
PractitionerRoles, Organizations and referral directory exist there (one search per type) and
counts the screening data present (``_summary=count``) — read-only — and prints what works,
what the sync will skip and why. Exit 0 when the workflow can run, 78 (EX_CONFIG) when the
server cannot support it or lacks the plan's references, 78 for a plan that cannot be used,
and the error's own exit code (e.g. 69 unreachable) when the server could not be asked at
all — one line on stderr, no traceback (``--wait S`` keeps trying a server that does not
answer yet, as one still starting, for up to S seconds). It authenticates like every command
(``--bearer-token`` or ``--client-id``/``--private-key``, :mod:`bhi_fhir.fhir.auth_factory`),
asking read scopes only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bhi_fhir.exit_codes import EXIT_CONFIG
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.doctor_data import (
    PlanCheck,
    ScreeningCounts,
    check_plan_references,
    count_screening_data,
)
from bhi_fhir.fhir.errors import RetryableError
from bhi_fhir.fhir.profile import Readiness, ServerProfile
from bhi_fhir.output import OutputFormat, offered, write_output
from bhi_fhir.practice_plan import PracticePlan

_STYLE = {"ok": "green", "warn": "yellow", "skip": "dim", "fail": "bold red"}


@dataclass(frozen=True)
class Diagnosis:
    profile: ServerProfile
    plan: PlanCheck
    screening: ScreeningCounts

    def readiness(self) -> Readiness:
        """The server's readiness, plus the plan's references (missing ones: cannot run) and
        the screening data (none yet: a warning)."""
        server = self.profile.readiness()
        checks = (*server.checks, self.plan.check(), self.screening.check())
        return Readiness(checks, can_run=server.can_run and self.plan.ok)

    def to_dict(self) -> dict[str, Any]:
        readiness = self.readiness()
        return {
            **self.profile.to_dict(),
            "plan": self.plan.to_dict(),
            "screening": self.screening.to_dict(),
            "can_run": readiness.can_run,
            "summary": readiness.summary,
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail} for c in readiness.checks
            ],
        }


async def _diagnose(
    server: str, auth: httpx.Auth | None, timeout: float, plan: PracticePlan
) -> Diagnosis:
    # A diagnosis should be quick: two retries, not five, and a short backoff ceiling.
    async with FhirClient(
        server, auth=auth, timeout=timeout, max_retries=2, backoff_max=5
    ) as client:
        profile = await ServerProfile.fetch(client)
        plan_check = await check_plan_references(client, plan)
        screening = await count_screening_data(client)
        return Diagnosis(profile, plan_check, screening)


def _render_table(
    profile: ServerProfile, console: Console, readiness: Readiness | None = None
) -> None:
    readiness = readiness or profile.readiness()
    table = Table(title=Text(f"FHIR server {profile.base_url}"))  # Text: no markup, no emoji
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for check in readiness.checks:
        table.add_row(check.name, f"[{_STYLE[check.status]}]{check.status}[/]", Text(check.detail))
    console.print(table)
    style = "green" if readiness.can_run else "bold red"
    console.print(f"[{style}]{readiness.summary}[/]")


logger = logging.getLogger(__name__)
_T = TypeVar("_T")
WAIT_STEP = 5.0  # seconds between attempts while --wait lasts


def _diagnose_within(wait: float, attempt: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """``attempt()`` run until it gets past a retryable failure (no answer, 503) or ``wait``
    seconds have passed; the last failure is raised."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return asyncio.run(attempt())
        except RetryableError as err:
            if time.monotonic() + WAIT_STEP > deadline:
                raise
            logger.warning("server not answering yet (%s); trying again in %.0f s",
                           type(err).__name__, WAIT_STEP)
            time.sleep(WAIT_STEP)


@with_server_auth
def doctor(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL")],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for scripts")
    ] = OutputFormat.table,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="practice plan TOML whose references must exist on the "
                     "server (default: the example, as sync uses)"),
    ] = None,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 15.0,
    wait: Annotated[
        float, typer.Option(help="seconds to keep trying a server that does not answer yet "
                            "(one still starting, as in docker compose)")
    ] = 0.0,
) -> None:
    """Check whether a FHIR server supports the BHI workflow, and what will be skipped."""
    offered(output, OutputFormat.json)  # a usage error before any work
    checked_server(server)
    from bhi_fhir.fhir.command_options import load_plan  # imported when the command runs

    practice_plan = load_plan(plan)  # as sync and registry report a plan that cannot be used
    auth = credentials.for_command(server, write=False)
    with exit_on_failed_request(f"error: cannot check {server}: "):
        diagnosis = _diagnose_within(wait, lambda: _diagnose(server, auth, timeout, practice_plan))
    readiness = diagnosis.readiness()
    write_output(output, document=diagnosis.to_dict,
                 people=lambda console: _render_table(diagnosis.profile, console, readiness))
    if not readiness.can_run:
        raise typer.Exit(EXIT_CONFIG)
