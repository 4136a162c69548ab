"""``bhi-fhir sync``: run the BHI workflow against a FHIR server, exactly once.

Exit codes: 0 everything done; 1 some patients or resources skipped or failed (see the
report; transient ones are picked up by the next run, refused ones are held: ``--failed``);
75 the run failed and should be retried; 77 the run stopped on an authorization failure
(401/403, token refused); 78 it stopped on a configuration failure (the server cannot support
the workflow, answers something that is not FHIR — a login page —, or a transaction answer
that does not match the request). The watermark never moves on a stopped run.

``--failed`` lists the patients held after a refusal (patient id, cause, reason codes,
attempts, next retry); ``--resolve Patient/<id>`` releases one an operator has dealt with.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from bhi_fhir.exit_codes import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    exit_code_for_cause,
)
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    stop,
    with_server_auth,
)
from bhi_fhir.fhir.command_options import load_plan, open_store, parse_today
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.settings import cli_settings
from bhi_fhir.sync.runner import SyncConfig, default_plan_path, run_sync

_PROGRESS_FROM = 50  # patients: below this a bar is noise


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{what} expects NAME=VALUE, got {value!r}")
        out.append((name, rest))
    return out


@with_server_auth
def sync(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL")],
    plan: Annotated[
        Path | None, typer.Option("--plan", help="practice plan TOML (default: the example)")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO instant; overrides the stored watermark")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the per-patient diff, write nothing")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    state_url: Annotated[
        str | None,
        typer.Option("--state-url",
                     help="SQLAlchemy URL of the operational store [env: BHI_STATE_URL; "
                     "default: SQLite in the state directory]"),
    ] = None,
    today: Annotated[
        str | None,
        typer.Option("--today", help="YYYY-MM-DD (default: today in the plan's billing.timezone)"),
    ] = None,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="Provenance agent reference (default: the bhi-fhir Device "
                     "by identifier)"),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="extra QuestionnaireResponse search parameter NAME=VALUE "
                     "(repeatable), e.g. _tag=system|code"),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="SYSTEM|CODE meta.tag put on everything written (repeatable)"),
    ] = None,
    group_size: Annotated[int, typer.Option(help="patients per batch read and transaction")] = 25,
    max_entries: Annotated[
        int, typer.Option(help="entries per transaction (a larger patient is split)")
    ] = 100,
    workers: Annotated[int, typer.Option(help="groups in flight at once")] = 4,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 30.0,
    max_retries: Annotated[int, typer.Option(help="retries per request")] = 5,
    worker: Annotated[
        bool,
        typer.Option("--worker", help="share the run with every other `sync --worker` on the "
                     "same PostgreSQL --state-url: each takes its own patients (run one per "
                     "process or machine)"),
    ] = False,
    lease: Annotated[
        float, typer.Option(help="--worker: seconds before a dead worker's patients are taken "
                            "over (renewed while working)")
    ] = 120.0,
    bulk: Annotated[
        Path | None,
        typer.Option("--bulk", help="first run (no watermark yet): read the population from a "
                     "Bulk Data $export into this folder (kept; a re-run resumes it) instead of "
                     "searches; later runs search from the export's time"),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="list the patients held after a refusal; no sync")
    ] = False,
    resolve: Annotated[
        list[str] | None,
        typer.Option("--resolve", help="release a held patient (Patient/<id>, repeatable) an "
                     "operator has dealt with; no sync"),
    ] = None,
) -> None:
    """Find changed screenings, run the BHI workflow and write the plan back, exactly once."""
    offered(output, OutputFormat.json)  # a usage error before any work
    checked_server(server)
    if failed or resolve:
        _held(server.rstrip("/"), state_url, resolve or [], output)
        return
    today_date = parse_today(today)
    tag_pairs = []
    for value in tag or []:
        system, sep, code = value.rpartition("|")
        if not sep or not system or not code:
            raise typer.BadParameter("--tag expects SYSTEM|CODE")
        tag_pairs.append((system, code))
    plan_path = plan or default_plan_path()
    load_plan(plan_path)  # a plan that cannot be used stops before any work
    config = SyncConfig(
        server=server,
        plan_path=plan_path,
        since=since,
        dry_run=dry_run,
        today=today_date,
        state_url=state_url,
        where=_pairs(where or [], "--where"),
        tags=tag_pairs,
        group_size=group_size,
        max_entries=max_entries,
        workers=workers,
        shared=worker,
        lease_s=lease,
        bulk=bulk,
        timeout=timeout,
        max_retries=max_retries,
        auth=credentials.for_command(server),
    )
    if agent:
        config.agent = {"reference": agent}
    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )
    task_ids: list[TaskID] = []

    def on_start(total: int) -> None:
        if total >= _PROGRESS_FROM:
            progress.start()
            task_ids.append(progress.add_task("patients", total=total))

    def on_progress(n: int) -> None:
        if task_ids:
            progress.advance(task_ids[0], n)

    if bulk is not None and (worker or since):
        stop("--bulk is for a first run by one process: no --worker or --since", EXIT_CONFIG)
    if worker and (dry_run or since):
        stop("--worker runs from the shared watermark and writes: no --dry-run or --since",
             EXIT_CONFIG)
    store = open_store(state_url)
    if worker and store.engine.dialect.name != "postgresql":
        store.close()
        stop("--worker needs a PostgreSQL --state-url (workers share the run through its row "
             f"locks); this store is {store.engine.dialect.name}: run one sync at a time",
             EXIT_CONFIG)
    try:
        report = asyncio.run(
            run_sync(config, store=store, on_start=on_start, progress=on_progress)
        )
    finally:
        progress.stop()
        store.close()
    if output is OutputFormat.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(report.to_text() + "\n")
    if report.status == "failed":
        run_problem = next((p for p in report.problems if p.stage == "run"), None)
        cause = run_problem.cause if run_problem else None
        raise typer.Exit(exit_code_for_cause(cause))
    if report.errors:
        raise typer.Exit(EXIT_FAILURE)


def _held(server: str, state_url: str | None, resolve: list[str], output: OutputFormat) -> None:
    """``--failed`` / ``--resolve``: the pending table, by patient id only (no PHI)."""
    store = open_store(state_url)
    try:
        for patient in resolve:
            if not store.release_patients(server, [patient]):
                typer.echo(f"{patient} is not held", err=True)
                raise typer.Exit(EXIT_FAILURE)
            typer.echo(f"{patient} released", err=True)
        rows = store.pending(server)
    finally:
        store.close()
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps([
            {"patient": r.patient, "cause": r.cause, "reason": r.reason, "attempts": r.attempts,
             "firstFailed": _iso(r.first_failed_at), "lastFailed": _iso(r.last_failed_at),
             "nextAttempt": _iso(r.next_attempt_at)}
            for r in rows
        ], indent=2) + "\n")
        return
    if not resolve or rows:
        sys.stdout.write(f"{len(rows)} patients held for {server}\n")
    for r in rows:
        sys.stdout.write(f"  {r.patient}  {r.cause}  attempts {r.attempts}  next "
                         f"{_iso(r.next_attempt_at)}  {r.reason}\n")


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite drops the zone
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


SUBSCRIPTION_CRITERIA = "QuestionnaireResponse?"


def subscription_criteria(where: Sequence[tuple[str, str]]) -> str:
    """Every QuestionnaireResponse, or those the ``--where`` search parameters match."""
    return SUBSCRIPTION_CRITERIA + urlencode(list(where), safe="|:/")


@with_server_auth
def subscribe(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL")],
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="where the server sends notifications, e.g. "
                          "https://app.example/fhir-notify")
    ],
    secret: Annotated[
        str | None,
        typer.Option("--secret",
                     help="shared secret the server sends as X-BHI-Notify-Secret "
                     "[env: BHI_NOTIFY_SECRET]"),
    ] = None,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="SYSTEM|CODE meta.tag on the Subscription (repeatable)"),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="notify only for QuestionnaireResponses this search "
                     "parameter NAME=VALUE matches (repeatable), e.g. _tag=system|code"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 30.0,
) -> None:
    """Register (once) a rest-hook Subscription for QuestionnaireResponse; prints its id."""
    from bhi_fhir.sync.subscription import ensure_subscription

    checked_server(server)
    tags = [tuple(t.rsplit("|", 1)) for t in tag or [] if "|" in t]
    criteria = subscription_criteria(_pairs(where or [], "--where"))
    with exit_on_failed_request("subscribe failed: "):
        sub_id, created = asyncio.run(ensure_subscription(
            server, endpoint, criteria=criteria,
            secret=secret if secret is not None else cli_settings().notify_secret,
            auth=credentials.for_command(server),
            tags=[(s, c) for s, c in tags], timeout=timeout,
        ))
    sys.stdout.write(f"Subscription/{sub_id} {'created' if created else 'already registered'}\n")
