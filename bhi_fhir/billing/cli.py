"""``bhi-fhir bill --month YYYY-MM``: close a month of care-management time into bills.

Reads the month's care-management Encounters and, for each patient with one, the patient's
Encounters, Consents, CarePlans, CareTeams, Conditions, Coverage and Patient (MRN) — from a
FHIR server (``--server``) or from files (``--input``: NDJSON / Bundle / JSON, the bulk-export
shape). The pure core (:mod:`bhi_fhir.billing.ledger`) decides each patient-month.

From a server, a patient's Encounters are read by ``date``, only as far back as the rules
look: the episode look-back (``episode_gap_months``, NC Medicaid, AMA) plus the initiating-visit
window (``initiating_visit_lookback_days``, CMS MLN909432) before the month; when the episode
reaches further back (continuous service), further windows are read until its start and the year
before it are covered (:func:`bhi_fhir.billing.ledger.history_start`).

The month-close is re-computable (:mod:`bhi_fhir.billing.writeback`): the server's billing
Encounters for the month are looked up by identifier; a new bill is a conditional create, a
changed one (late or corrected time) a versioned update with a new Provenance, an unchanged one
no write. A version clash (someone else changed the bill) is re-read and retried once, then
reported as ``conflict``. ``--dry-run`` decides and reports (``would-create`` /
``would-update``) without writing; ``--out`` saves the planned transaction Bundle. A bill of the
month whose time entries were all deleted or entered in error is looked up too (identifier
system, dated in the month) and proposed for cancellation (``would-cancel``, in ``--out``);
``--cancel-orphaned-bills`` writes it (``cancelled``,
:func:`bhi_fhir.billing.writeback.plan_cancel`).

The report (table, json or csv on stdout) lists patient, MRN, month, program, diagnosis,
billing practitioner, payer, minutes, codes and units, requirement status and the result
(created / updated / unchanged / exists / conflict / billed-not-billable / not-billable /
would-cancel / cancelled); the
json and table forms add a summary per result, the not-billable reasons and, from a server, the
number of HTTP requests; ``not_counted`` lists, per time entry, why its time (or how many of
its minutes) was not counted. Exit 0 when the run completed (not-billable months are results,
not errors); a server error exits with :func:`bhi_fhir.fhir.errors.exit_code_for`; bad options
exit 2. A bad ``--input`` (a line or file that is not FHIR, an unreadable file or directory)
is one ``error: file:line: message`` line on stderr, the rest is still billed (and written),
and the run exits 65 — as ``apply`` and ``score`` do; a plan that cannot be used exits 78.

Billing configuration comes from the practice plan (``--plan FILE``: its ``[team]`` and
``[billing]`` sections, :func:`bhi_fhir.billing.rules.rules_from_plan`) or from ``--rules FILE``
(TOML or JSON, a bare ``BillingRules``; a ``[billing]`` table of that shape is accepted), plus
``--billing-practitioner`` / ``--timezone`` overrides and ``--care-manager`` additions (CoCM
minutes are the care managers' time only: CMS MLN909432, CPT 99492-99494 descriptors).

This module is the command; the files side is :mod:`bhi_fhir.billing.files`, the server side
:mod:`bhi_fhir.billing.server`, the report :mod:`bhi_fhir.billing.report`.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from bhi_fhir.billing.files import close_files, load_plan_rules, load_rules
from bhi_fhir.billing.ledger import (
    Month,
    PatientMonth,
    Rejected,
    close_month,
)
from bhi_fhir.billing.report import csv_text, print_table, reason_counts, report_row, summarize
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.billing.server import (
    PLANNED,
    cancel_bill,
    existing_bills,
    month_bills,
    records_from_server,
    write_months,
)
from bhi_fhir.billing.writeback import (
    Write,
    orphaned_bills,
    plan_cancel,
    plan_write,
    write_bundle,
)
from bhi_fhir.exit_codes import EXIT_DATAERR, exit_code_of
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.practice_plan import PracticePlanError
from bhi_fhir.sources import SourceError

# ------------------------------------------------------------------------------- command


@with_server_auth
def bill(
    month: Annotated[str, typer.Option("--month", help="calendar month to bill, YYYY-MM")],
    server: Annotated[
        str | None, typer.Option("--server", help="FHIR base URL to read from and write to")
    ] = None,
    input_files: Annotated[
        list[Path] | None,
        typer.Option("--input", help="read from NDJSON/Bundle files instead of the server"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="decide and report, write nothing")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    out: Annotated[
        Path | None, typer.Option("--out", help="also save the transaction Bundle here")
    ] = None,
    patients: Annotated[
        list[str] | None,
        typer.Option("--patient", help="bill only these patients (Patient/<id>), repeatable"),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option("--plan", help="practice plan (TOML): team and billing sections are read"),
    ] = None,
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules", help="billing rules file (TOML or JSON; a billing table is read)"),
    ] = None,
    billing_practitioner: Annotated[
        str | None, typer.Option("--billing-practitioner", help="e.g. Practitioner/123")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of the practice's months")
    ] = None,
    cancel_orphaned: Annotated[
        bool,
        typer.Option(
            "--cancel-orphaned-bills",
            help="write the proposed cancellation of bills whose time entries were all deleted "
            "or entered in error (without it they are reported as would-cancel)",
        ),
    ] = False,
    care_managers: Annotated[
        list[str] | None,
        typer.Option(
            "--care-manager",
            help="a behavioral health care manager (Practitioner/<id>), repeatable: CoCM "
            "minutes count only their time",
        ),
    ] = None,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
) -> None:
    """Close a month: minutes → codes → one billing Encounter per billable patient-month."""
    offered(output, OutputFormat.json, OutputFormat.csv)  # a usage error before any work
    try:
        the_month = Month.parse(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if server is None and not input_files:
        raise typer.BadParameter("give --server or --input", param_hint="--server")
    if server is not None:
        checked_server(server)
    if plan_file is not None and rules_file is not None:
        raise typer.BadParameter("give --plan or --rules, not both", param_hint="--plan")
    try:
        if plan_file is not None:
            rules = load_plan_rules(plan_file, billing_practitioner, timezone)
        else:
            rules = load_rules(rules_file, billing_practitioner, timezone)
    except PracticePlanError as exc:
        # One line, as `apply` and `sync` report a plan that cannot be used.
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_of(exc)) from None
    except (OSError, ValueError, ValidationError, tomllib.TOMLDecodeError) as exc:
        hint = "--plan" if plan_file is not None else "--rules"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    if care_managers:
        rules = rules.model_copy(update={"care_managers": [*rules.care_managers, *care_managers]})
    now = datetime.now(UTC)  # an instant against the month's end in the practice's zone
    month_open = the_month.end(ZoneInfo(rules.timezone)) > now
    if not dry_run and server is not None and month_open:
        raise typer.BadParameter(
            f"{the_month} has not ended: bill it once its time has accrued, or use --dry-run",
            param_hint="--month",
        )
    with exit_on_failed_request("error: "):
        report = asyncio.run(
            _run(
                the_month,
                rules,
                server,
                input_files or [],
                dry_run,
                out,
                credentials.for_command(server) if server is not None else None,
                now,
                set(patients or ()),
                cancel_orphaned,
            )
        )
    rows, rejected, errors = report.rows, report.rejected, report.errors
    notes = []
    if month_open:
        notes.append(f"{the_month} has not ended: a preview, its time is still accruing "
                     "(a calendar month is billed once its time has accrued)")
    if output is OutputFormat.json:
        typer.echo(
            json.dumps(
                {
                    "month": str(the_month),
                    "summary": summarize(rows),
                    "not_billable_reasons": reason_counts(rows),
                    "requests": report.requests,
                    "notes": notes,
                    "patients": rows,
                    "not_counted": [
                        {
                            "entry": r.reference,
                            "code": r.code,
                            "minutes": r.minutes,
                            "reason": r.reason,
                        }
                        for r in rejected
                    ],
                    "errors": [
                        {"file": e.file, "line": e.line, "message": e.message} for e in errors
                    ],
                },
                indent=2,
            )
        )
    elif output is OutputFormat.csv:
        typer.echo(csv_text(rows), nl=False)
    else:
        # Input-derived text (references, reasons) is printed as is: no markup, no emoji codes.
        console = Console(markup=False, emoji=False, highlight=False)
        print_table(rows, rejected, console)
        summary = ", ".join(f"{k} {v}" for k, v in summarize(rows).items()) or "no patient-months"
        requests = f"; {report.requests} requests" if report.requests is not None else ""
        console.print(f"{len(rows)} patient-months: {summary}{requests}")
        texts = {r["code"]: r["text"] for row in rows for r in row["reasons"]}
        for code, count in reason_counts(rows).items():
            console.print(f"  {count} × {code}: {texts[code]}")
        for note in notes:
            console.print(Text.assemble(("note", "yellow"), f" {note}"))
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:
        # Like `apply` and `score`: the good input is billed (and written), and a scheduler
        # still sees that some input was refused: 65, not 1, which is for patients the
        # server refused.
        raise typer.Exit(EXIT_DATAERR)


@dataclass
class RunReport:
    rows: list[dict[str, Any]]
    rejected: list[Rejected]
    errors: list[SourceError]
    requests: int | None  # HTTP requests sent to the server (None: files only)


async def _run(
    month: Month,
    rules: BillingRules,
    server: str | None,
    inputs: list[Path],
    dry_run: bool,
    out: Path | None,
    auth: httpx.Auth | None,
    now: datetime,
    only: set[str],
    cancel_orphaned: bool = False,
) -> RunReport:
    errors: list[SourceError] = []
    client: FhirClient | None = None
    if server is not None:
        client = FhirClient(server, auth=auth)
    try:
        months: list[PatientMonth] = []
        rejected: list[Rejected] = []
        if inputs or client is None:
            files = close_files(inputs, month, rules, only)
            months, rejected, errors = files.months, files.rejected, files.errors
            bills = files.bills
        else:
            records = await records_from_server(client, month, rules, only)
            bills = await month_bills(client, month, only)
            for record in records:
                closed, not_counted = close_month(record, month, rules)
                months += closed
                rejected += not_counted
        existing = await existing_bills(client, months) if client is not None and months else {}
        writes = [plan_write(m, existing.get(m.identifier_value), now) for m in months]
        writes += [plan_cancel(b, month, now) for b in orphaned_bills(bills, months, month)]
        if out is not None:
            out.write_text(json.dumps(write_bundle(writes), indent=2), encoding="utf-8")
        results: dict[str, str] = {}
        if client is not None and not dry_run:
            results = await write_months(client, [w for w in writes if w.action != "cancel"], now)
            if cancel_orphaned:
                for write in writes:
                    if write.action == "cancel":
                        value = write.month.identifier_value
                        results[value] = await cancel_bill(client, write, now)
        rows = [
            report_row(w.month, _result(w, results, client is not None), w.changes) for w in writes
        ]
        return RunReport(rows, rejected, errors, client.request_count if client else None)
    finally:
        if client is not None:
            await client.aclose()




def _result(write: Write, results: dict[str, str], server: bool) -> str:
    """The report's result for one patient-month."""
    value = write.month.identifier_value
    if value in results:
        return results[value]
    if write.action == "none":
        return "not-billable"
    if write.action == "unchanged":
        return "unchanged"
    if not server and write.action != "cancel":
        return "dry-run"
    return PLANNED[write.action]
