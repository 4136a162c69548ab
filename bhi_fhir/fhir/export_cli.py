"""``bhi-fhir export --server URL --out FOLDER``: a Bulk Data ``$export`` into a folder.

The folder is what ``bhi-fhir apply FOLDER`` and ``bhi-fhir bill --input FOLDER`` read; its
layout, the polling and the resume after a crash are :mod:`bhi_fhir.fhir.bulk`'s. Progress goes
to stderr a line per event, the summary to stdout. Exit codes (:mod:`bhi_fhir.exit_codes`): 0
done; 1 done, but the server reported errors (``error/``); 2 bad options; 75 a folder holding
another export; 69 try again later (the same command resumes); 77 authorization; 78 the server
does not offer ``$export``; the failed request's own code otherwise. It authenticates like
every command (``--bearer-token`` or ``--client-id``/``--private-key``), asking read scopes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bhi_fhir.exit_codes import EXIT_FAILURE, exit_code_of
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    stop,
    with_server_auth,
)
from bhi_fhir.fhir.bulk import (
    NDJSON,
    ExportRequest,
    ExportResult,
    FolderInUse,
    export,
    parse_since,
    summary_lines,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.output import OutputFormat, offered


def _progress(message: str) -> None:
    typer.echo(f"{datetime.now().strftime('%H:%M:%S')} {message}", err=True)


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for value in values or [] for v in value.split(",") if v.strip())


@with_server_auth
def export_command(
    server: Annotated[str, typer.Option("--server", help="FHIR base URL")],
    out: Annotated[
        Path, typer.Option("--out", help="export folder (a re-run with the same options resumes)")
    ],
    group: Annotated[
        str | None, typer.Option("--group", help="export a Group's members (Group/ID/$export)")
    ] = None,
    patient: Annotated[
        list[str] | None,
        typer.Option("--patient", help="export these patients (ID or Patient/ID, repeatable)"),
    ] = None,
    all_patients: Annotated[
        bool, typer.Option("--all-patients", help="every patient's data (Patient/$export)")
    ] = False,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="resource types, comma-separated or repeated (_type)"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="only resources changed since this instant or date (_since)"),
    ] = None,
    type_filter: Annotated[
        list[str] | None,
        typer.Option("--type-filter", help="a search narrowing one type, e.g. "
                     "'Observation?category=survey' (_typeFilter, repeatable)"),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--output-format", help="_outputFormat (NDJSON only)")
    ] = NDJSON,
    max_poll_interval: Annotated[
        float, typer.Option(help="seconds at most between status polls, whatever Retry-After "
                            "says")
    ] = 300.0,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
    max_retries: Annotated[int, typer.Option(help="retries per request")] = 5,
) -> None:
    """Bulk-export a server's data (system, Group or Patient level) into an NDJSON folder."""
    offered(output, OutputFormat.json)  # a usage error before any work
    checked_server(server)
    try:
        request = ExportRequest(
            group=group,
            patients=_split(patient),
            all_patients=all_patients,
            types=_split(types),
            since=parse_since(since) if since else None,
            type_filters=tuple(type_filter or ()),
            output_format=output_format,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    auth = credentials.for_command(server, write=False)

    async def run() -> ExportResult:
        async with FhirClient(server, auth=auth, timeout=timeout,
                              max_retries=max_retries) as fhir:
            return await export(fhir, request, out, report=_progress,
                                max_poll_interval=max_poll_interval)

    try:
        with exit_on_failed_request(f"error: export from {server} failed: ",
                                    retry_hint=f"run the same command again to resume ({out})"):
            result = asyncio.run(run())
    except FolderInUse as exc:
        stop(str(exc), exit_code_of(exc))  # another export holds the folder: 75
    if output is OutputFormat.json:
        typer.echo(json.dumps({
            "folder": str(result.folder),
            "transactionTime": result.transaction_time,
            "resources": result.by_type("output"),
            "deleted": result.count("deleted"),
            "errors": len(result.errors),
            "files": [{"kind": f.kind, "type": f.type, "path": f.path, "lines": f.lines,
                       "bytes": f.bytes} for f in result.files],
            "resumed": result.resumed,
        }, indent=2))
    else:
        for line in summary_lines(result):
            typer.echo(line)
    for line in result.errors[:20]:
        typer.echo(f"server error: {line}", err=True)
    if result.errors:
        raise typer.Exit(EXIT_FAILURE)
