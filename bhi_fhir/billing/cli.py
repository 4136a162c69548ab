"""``bhi-fhir bill --month YYYY-MM``: close a month of care-management time into bills.

Reads the month's care-management Encounters and, for each patient with one, the patient's
Encounters, Consents, CarePlans, CareTeams, Conditions, Coverage and Patient (MRN) — from a
FHIR server (``--server``) or from files (``--input``: NDJSON / Bundle / JSON, the bulk-export
shape). The pure core (:mod:`bhi_fhir.billing.ledger`) decides each patient-month; billable
months become a transaction Bundle of conditional creates (Encounter + Provenance) written to
``--server`` unless ``--dry-run``; ``--out`` saves the Bundle. Re-running never duplicates.

The report (table, json or csv on stdout) lists patient, MRN, month, program, diagnosis,
billing practitioner, payer, minutes, codes and units, requirement status and the write result.
Exit 0 when the run completed (not-billable months are results, not errors); a server error
exits with :func:`bhi_fhir.fhir.errors.exit_code_for`; bad options exit 2.

Billing configuration comes from ``--rules FILE`` (TOML or JSON, a ``BillingRules``; a
``[billing]`` table is accepted so the practice-plan file can be passed as is) plus
``--billing-practitioner`` / ``--timezone`` overrides.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tomllib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bhi_fhir.billing._time import is_time_entry
from bhi_fhir.billing.encounter import billing_transaction
from bhi_fhir.billing.ledger import (
    Month,
    PatientMonth,
    PatientRecord,
    Rejected,
    close_month,
    group_by_patient,
    ledger_entries,
)
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.cli import app
from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT
from bhi_fhir.fhir.auth import BearerAuth
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.errors import FhirError, exit_code_for
from bhi_fhir.sources import SourceError, read_resources

Resource = dict[str, Any]


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


CSV_COLUMNS = (
    "patient",
    "mrn",
    "month",
    "program",
    "month_kind",
    "diagnosis",
    "billing_practitioner",
    "payer",
    "minutes",
    "recorded_minutes",
    "codes",
    "billable",
    "consent",
    "initiating_visit",
    "psychiatric_consultant",
    "reasons",
    "warnings",
    "result",
)


# ------------------------------------------------------------------------------- reading


def load_rules(
    path: Path | None, billing_practitioner: str | None, timezone: str | None
) -> BillingRules:
    data: dict[str, Any] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        if isinstance(data.get("billing"), dict):
            data = data["billing"]
    if billing_practitioner is not None:
        data["billing_practitioner"] = billing_practitioner
    if timezone is not None:
        data["timezone"] = timezone
    return BillingRules.model_validate(data)


def records_from_files(
    paths: Iterable[Path], month: Month, rules: BillingRules, only: set[str] | None = None
) -> tuple[list[PatientRecord], list[SourceError]]:
    resources: list[Resource] = []
    errors: list[SourceError] = []
    for item in read_resources(paths):
        if isinstance(item, SourceError):
            errors.append(item)
        else:
            resources.append(item)
    records = group_by_patient(resources)
    wanted = _patients_with_time(resources, month, rules)
    if only:
        wanted &= only
    return [records[p] for p in sorted(wanted) if p in records], errors


def _patients_with_time(
    resources: Iterable[Resource], month: Month, rules: BillingRules
) -> set[str]:
    tz = ZoneInfo(rules.timezone)
    start, end = month.start(tz), month.end(tz)
    entries, _ = ledger_entries(
        (r for r in resources if r.get("resourceType") == "Encounter" and is_time_entry(r)), tz
    )
    return {e.patient for e in entries if e.start < end and e.end > start}


async def records_from_server(
    fhir: FhirClient, month: Month, rules: BillingRules, only: set[str] | None = None
) -> list[PatientRecord]:
    """The month's patients, each with everything billing reads (see the module docstring)."""
    # A day of slack each side: the server compares dates in its own zone; the pure core
    # then keeps exactly the entries inside the practice's month.
    params = {
        "type": f"{BHI_ACTIVITY}|{CARE_MANAGEMENT_CONTACT}",
        "date": [f"ge{_day_before(month.first_day())}", f"lt{_day_after(month.last_day())}"],
        "_count": "200",
    }
    if only:
        params["patient"] = sorted(only)[0] if len(only) == 1 else ",".join(sorted(only))
    entries = [e async for e in fhir.search("Encounter", params)]
    wanted = _patients_with_time(entries, month, rules)
    patients = sorted(wanted & only if only else wanted)
    records = await asyncio.gather(*(_record(fhir, p, month) for p in patients))
    return list(records)


def _day_before(day: date) -> str:
    return (day - timedelta(days=1)).isoformat()


def _day_after(day: date) -> str:
    return (day + timedelta(days=1)).isoformat()


async def _record(fhir: FhirClient, patient: str, month: Month) -> PatientRecord:
    pid = patient.split("/", 1)[1]
    upto = f"lt{_day_after(month.last_day())}"

    async def all_of(kind: str, params: dict[str, Any]) -> list[Resource]:
        return [r async for r in fhir.search(kind, {**params, "_count": "200"})]

    patient_resource = await fhir.read("Patient", pid)
    groups = await asyncio.gather(
        all_of("Encounter", {"patient": patient, "date": upto}),
        all_of("Consent", {"patient": patient}),
        all_of("CarePlan", {"patient": patient}),
        all_of("CareTeam", {"patient": patient}),
        all_of("Condition", {"patient": patient}),
        all_of("Coverage", {"beneficiary": patient}),
    )
    record = PatientRecord(patient)
    record.add(patient_resource)
    for group in groups:
        for resource in group:
            record.add(resource)
    return record


# ------------------------------------------------------------------------------- writing


def write_results(bundle: Resource, response: Resource) -> dict[str, str]:
    """identifier value → "created" / "exists", from a transaction-response Bundle."""
    out: dict[str, str] = {}
    for request, answer in zip(bundle.get("entry", []), response.get("entry") or [], strict=False):
        resource = request["resource"]
        if resource["resourceType"] != "Encounter":
            continue
        status = str((answer.get("response") or {}).get("status", ""))
        value = resource["identifier"][0]["value"]
        out[value] = "created" if status.startswith("201") else "exists"
    return out


# ------------------------------------------------------------------------------- report


def report_row(month: PatientMonth, result: str) -> dict[str, Any]:
    return {
        "patient": month.patient,
        "mrn": month.mrn,
        "month": str(month.month),
        "program": month.program,
        "month_kind": month.month_kind,
        "diagnosis": [d.code for d in month.diagnoses],
        "billing_practitioner": month.billing_practitioner,
        "payer": month.payer,
        "minutes": month.minutes,
        "recorded_minutes": month.recorded_minutes,
        "codes": [{"code": c.code, "units": c.units} for c in month.codes],
        "billable": month.billable,
        "requirements": month.requirements,
        "reasons": [{"code": r.code, "text": r.text} for r in month.reasons],
        "warnings": list(month.warnings),
        "entries": list(month.entries),
        "result": result,
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        req = row["requirements"]
        writer.writerow(
            {
                **{
                    k: row[k]
                    for k in CSV_COLUMNS
                    if k in row and not isinstance(row[k], list | dict)
                },
                "diagnosis": " ".join(row["diagnosis"]),
                "codes": " ".join(f"{c['code']}x{c['units']}" for c in row["codes"]),
                "consent": req.get("consent"),
                "initiating_visit": req.get("initiating_visit"),
                "psychiatric_consultant": req.get("psychiatric_consultant", ""),
                "reasons": "; ".join(r["text"] for r in row["reasons"]),
                "warnings": "; ".join(row["warnings"]),
            }
        )
    return buffer.getvalue()


def _table(rows: list[dict[str, Any]], rejected: list[Rejected], console: Console) -> None:
    table = Table(title="Billing report", show_lines=False)
    for column in (
        "Patient", "MRN", "Month", "Program", "Dx", "Billing practitioner", "Payer",
        "Min", "Codes", "Status", "Result",
    ):  # fmt: skip
        table.add_column(column)
    for row in rows:
        status = "billable" if row["billable"] else "; ".join(r["text"] for r in row["reasons"])
        kind = f" ({row['month_kind']})" if row["month_kind"] else ""
        table.add_row(
            row["patient"],
            row["mrn"] or "",
            row["month"],
            row["program"] + kind,
            " ".join(row["diagnosis"]),
            row["billing_practitioner"] or "",
            row["payer"] or "",
            str(row["minutes"]),
            " ".join(f"{c['code']}x{c['units']}" for c in row["codes"]),
            status,
            row["result"],
        )
    console.print(table)
    for item in rejected:
        console.print(f"[yellow]not counted[/yellow] {item.reference}: {item.reason}")


# ------------------------------------------------------------------------------- command


@app.command("bill")
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
    token: Annotated[
        str | None,
        typer.Option("--bearer-token", envvar="BHI_FHIR_TOKEN", help="static bearer token"),
    ] = None,
) -> None:
    """Close a month: minutes → codes → one billing Encounter per billable patient-month."""
    try:
        the_month = Month.parse(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if server is None and not input_files:
        raise typer.BadParameter("give --server or --input", param_hint="--server")
    try:
        rules = load_rules(rules_file, billing_practitioner, timezone)
    except (OSError, ValueError, ValidationError, tomllib.TOMLDecodeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--rules") from None
    now = datetime.now(UTC)
    if not dry_run and server is not None and the_month.end(ZoneInfo(rules.timezone)) > now:
        raise typer.BadParameter(
            f"{the_month} has not ended: bill it once its time has accrued, or use --dry-run",
            param_hint="--month",
        )
    try:
        report = asyncio.run(
            _run(
                the_month,
                rules,
                server,
                input_files or [],
                dry_run,
                out,
                token,
                now,
                set(patients or ()),
            )
        )
    except FhirError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    rows, rejected, errors = report
    if output is OutputFormat.json:
        typer.echo(
            json.dumps(
                {
                    "month": str(the_month),
                    "patients": rows,
                    "not_counted": [{"entry": r.reference, "reason": r.reason} for r in rejected],
                    "errors": [
                        {"file": e.file, "line": e.line, "message": e.message} for e in errors
                    ],
                },
                indent=2,
            )
        )
    elif output is OutputFormat.csv:
        typer.echo(_csv(rows), nl=False)
    else:
        console = Console()
        _table(rows, rejected, console)
        for error in errors:
            console.print(f"[red]skipped[/red] {error}")


async def _run(
    month: Month,
    rules: BillingRules,
    server: str | None,
    inputs: list[Path],
    dry_run: bool,
    out: Path | None,
    token: str | None,
    now: datetime,
    only: set[str],
) -> tuple[list[dict[str, Any]], list[Rejected], list[SourceError]]:
    errors: list[SourceError] = []
    client: FhirClient | None = None
    if server is not None:
        client = FhirClient(server, auth=BearerAuth(token) if token else None)
    try:
        if inputs or client is None:
            records, errors = records_from_files(inputs, month, rules, only)
        else:
            records = await records_from_server(client, month, rules, only)
        months: list[PatientMonth] = []
        rejected: list[Rejected] = []
        for record in records:
            closed, not_counted = close_month(record, month, rules)
            months += closed
            rejected += not_counted
        bundle = billing_transaction(months, now)
        if out is not None:
            out.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
        results: dict[str, str] = {}
        if client is not None and not dry_run and bundle["entry"]:
            response = await client.transaction(bundle)
            results = write_results(bundle, response)
        default = "dry-run" if dry_run or client is None else "-"
        rows = [
            report_row(m, results.get(m.identifier_value, default if m.billable else "-"))
            for m in months
        ]
        return rows, rejected, errors
    finally:
        if client is not None:
            await client.aclose()
