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
is one ``error: file:line: message`` line on stderr, the rest is still billed, and the run
exits 2 — as ``apply`` and ``score`` do.

Billing configuration comes from the practice plan (``--plan FILE``: its ``[team]`` and
``[billing]`` sections, :func:`bhi_fhir.billing.rules.rules_from_plan`) or from ``--rules FILE``
(TOML or JSON, a bare ``BillingRules``; a ``[billing]`` table of that shape is accepted), plus
``--billing-practitioner`` / ``--timezone`` overrides and ``--care-manager`` additions (CoCM
minutes are the care managers' time only: CMS MLN909432, CPT 99492-99494 descriptors).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bhi_fhir.billing._time import is_time_entry
from bhi_fhir.billing.ledger import (
    Month,
    PatientMonth,
    PatientRecord,
    Rejected,
    close_month,
    group_by_patient,
    history_start,
    ledger_entries,
    patient_of,
)
from bhi_fhir.billing.rules import BillingRules, rules_from_plan
from bhi_fhir.billing.writeback import (
    Write,
    bill_identifier,
    orphaned_bills,
    plan_cancel,
    plan_write,
    write_bundle,
)
from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER, CARE_MANAGEMENT_CONTACT
from bhi_fhir.exit_codes import EXIT_BAD_INPUT
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.errors import Conflict, PreconditionFailed
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import entry_answers
from bhi_fhir.practice_plan import PracticePlanError, load_practice_plan
from bhi_fhir.sources import PatientBuckets, SourceError, expand_paths, read_resources


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


def load_plan_rules(
    path: Path, billing_practitioner: str | None, timezone: str | None
) -> BillingRules:
    """Billing rules from a practice plan (``[team]`` + ``[billing]``, see
    :func:`bhi_fhir.billing.rules.rules_from_plan`)."""
    return rules_from_plan(
        load_practice_plan(path), billing_practitioner=billing_practitioner, timezone=timezone
    )


# The resource types billing reads (:class:`bhi_fhir.billing.ledger.PatientRecord`); the rest of
# an export (Observations, QuestionnaireResponses, ...) is dropped as it is read.
_BILLING_TYPES = frozenset(
    {"Patient", "Encounter", "Consent", "CarePlan", "CareTeam", "Condition", "Coverage"}
)
# Of a Patient, billing reads the MRN and whether (and when) the patient died.
_PATIENT_FIELDS = ("resourceType", "id", "identifier", "deceasedBoolean", "deceasedDateTime")
# Input bytes per bucket. Smaller than apply's: billing keeps whole Encounters, about ten
# times their JSON size once decoded, so 8 MB of input is a bucket of well under 100 MB.
_BUCKET_BYTES = 8 * 1024 * 1024


@dataclass
class FilesMonth:
    """A month closed from files: the patient-months, the time not counted, the read errors
    and the billing Encounters found (to find bills whose time entries are all gone)."""

    months: list[PatientMonth]
    rejected: list[Rejected]
    errors: list[SourceError]
    bills: list[Resource]


def close_files(
    paths: list[Path], month: Month, rules: BillingRules, only: set[str] | None = None
) -> FilesMonth:
    """Close ``month`` from files, memory flat in the input size, as ``apply`` reads them.

    A patient's resources may be anywhere in the input (bulk export writes one file per
    type), so they are partitioned by a hash of the patient into buckets — spilled to
    temporary NDJSON files above 8 MB of input — and each bucket is closed on its own: peak
    memory is about one bucket of the billing types, not the whole export. Only the types
    billing reads are kept, and of a Patient only its MRN and death.
    """
    errors: list[SourceError] = []
    bills: list[Resource] = []
    total = sum(p.stat().st_size for p in expand_paths(paths) if p.is_file())
    count = max(1, -(-total // _BUCKET_BYTES))
    closed: list[tuple[str, list[PatientMonth], list[Rejected]]] = []
    with tempfile.TemporaryDirectory(prefix="bhi-fhir-bill-") as tmp:
        buckets = PatientBuckets(count, Path(tmp) if count > 1 else None)
        # Every line is decoded (not read_resources' ``only``, which skips lines that cannot
        # hold a wanted type unread): a broken line is reported whatever it was meant to be.
        for item in read_resources(paths, local_references=True):
            if isinstance(item, SourceError):
                errors.append(item)
                continue
            if item["resourceType"] not in _BILLING_TYPES:
                continue
            patient = patient_of(item)
            if patient is None or (only and patient not in only):
                continue
            if item["resourceType"] == "Patient":
                item = {k: item[k] for k in _PATIENT_FIELDS if k in item}
            elif item["resourceType"] == "Encounter" and bill_identifier(item) is not None:
                bills.append(item)
            buckets.add(patient, item, ("", None))
        for bucket in buckets:
            records = group_by_patient(resource for resource, _ in bucket)
            wanted = _patients_with_time(
                (e for record in records.values() for e in record.encounters), month, rules
            )
            for patient in wanted:
                closed.append((patient, *close_month(records[patient], month, rules)))
    closed.sort(key=lambda item: item[0])  # the report's order: by patient, as read
    return FilesMonth(
        [m for _, months, _ in closed for m in months],
        [r for _, _, rejected in closed for r in rejected],
        errors,
        bills,
    )


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
    records = await asyncio.gather(*(_record(fhir, p, month, rules) for p in patients))
    return list(records)


def _day_before(day: date) -> str:
    return (day - timedelta(days=1)).isoformat()


def _day_after(day: date) -> str:
    return (day + timedelta(days=1)).isoformat()


# A patient whose episode keeps reaching back is read in at most this many more windows.
_MAX_HISTORY_WINDOWS = 20


def first_window_start(month: Month, rules: BillingRules) -> datetime:
    """Where a patient's Encounter history is first read from: the episode look-back
    (``episode_gap_months``, NC Medicaid, AMA) and the initiating-visit window before it
    (``initiating_visit_lookback_days``, CMS MLN909432)."""
    tz = ZoneInfo(rules.timezone)
    return month.shift(-rules.episode_gap_months).start(tz) - timedelta(
        days=rules.initiating_visit_lookback_days
    )


async def _record(
    fhir: FhirClient, patient: str, month: Month, rules: BillingRules
) -> PatientRecord:
    pid = patient.split("/", 1)[1]

    async def all_of(kind: str, params: dict[str, Any]) -> list[Resource]:
        return [r async for r in fhir.search(kind, {**params, "_count": "200"})]

    def encounters(since: date, until: date) -> Any:
        return all_of(
            "Encounter",
            {"patient": patient, "date": [f"ge{_day_before(since)}", f"lt{_day_after(until)}"]},
        )

    fetched_from = first_window_start(month, rules)
    patient_resource = await fhir.read("Patient", pid)
    groups = await asyncio.gather(
        encounters(fetched_from.date(), month.last_day()),
        all_of("Consent", {"patient": patient}),
        all_of("CarePlan", {"patient": patient}),
        all_of("CareTeam", {"patient": patient}),
        all_of("Condition", {"patient": patient}),
        all_of("Coverage", {"beneficiary": patient}),
    )
    record = PatientRecord(patient)
    record.add(patient_resource)
    seen: set[str] = set()
    for group in groups:
        for resource in group:
            _add_once(record, resource, seen)
    # Episodes that reach further back (continuous service) need more history: NC Medicaid, AMA, CMS
    # MLN909432.
    for _ in range(_MAX_HISTORY_WINDOWS):
        needed = history_start(record, month, rules)
        if needed >= fetched_from:
            break
        for resource in await encounters(needed.date(), fetched_from.date()):
            _add_once(record, resource, seen)
        fetched_from = needed
    return record


def _add_once(record: PatientRecord, resource: Resource, seen: set[str]) -> None:
    key = f"{resource.get('resourceType')}/{resource.get('id')}"
    if resource.get("id") is not None and key in seen:
        return
    seen.add(key)
    record.add(resource)


# ------------------------------------------------------------------------------- writing


_LOOKUP_CHUNK = 50


async def month_bills(fhir: FhirClient, month: Month, only: set[str] | None) -> list[Resource]:
    """Every billing Encounter the server holds for ``month`` (any identifier of ours, dated in
    the month), to find bills whose time entries were all deleted or entered in error."""
    params: dict[str, Any] = {
        "identifier": f"{BHI_IDENTIFIER}|",
        "date": [f"ge{month.first_day()}", f"le{month.last_day()}"],
        "_count": "200",
    }
    if only:
        params["patient"] = ",".join(sorted(only))
    return [r async for r in fhir.search("Encounter", params)]


async def existing_bills(fhir: FhirClient, months: Iterable[PatientMonth]) -> dict[str, Resource]:
    """identifier value → the billing Encounter the server holds, searched by identifier
    (``_count`` covers a chunk; ``Cache-Control: no-cache`` so a search cache cannot hide a
    bill written a moment ago)."""
    values = sorted({m.identifier_value for m in months})
    found: dict[str, Resource] = {}
    for i in range(0, len(values), _LOOKUP_CHUNK):
        chunk = set(values[i : i + _LOOKUP_CHUNK])
        params = {
            "identifier": ",".join(f"{BHI_IDENTIFIER}|{v}" for v in sorted(chunk)),
            "_count": str(4 * _LOOKUP_CHUNK),
        }
        response = await fhir.request(
            "GET", "Encounter", params=params, headers={"Cache-Control": "no-cache"}
        )
        bundle = response.json()
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Encounter":
                continue
            for ident in resource.get("identifier") or []:
                value = ident.get("value") if isinstance(ident, dict) else None
                if ident.get("system") == BHI_IDENTIFIER and value in chunk:
                    found.setdefault(value, resource)
    return found


def _created(response: Resource) -> str:
    """ "created" / "exists" from the Encounter entry of a create transaction's response."""
    for answer in entry_answers(response):
        if answer.location.startswith("Encounter/"):
            return "created" if answer.created else "exists"
    return "exists"


async def write_months(fhir: FhirClient, writes: list[Write], recorded: datetime) -> dict[str, str]:
    """Carry the planned writes out; identifier value → result.

    Creates go in one transaction (conditional creates: safe to repeat, and a concurrent run
    cannot duplicate them). Each update is its own transaction (``ifMatch``), so a version
    clash fails only that month: the bill is then re-read, re-planned and retried once; a
    second clash is reported as ``conflict``, not raised.
    """
    results: dict[str, str] = {}
    creates = [w for w in writes if w.action == "create"]
    if creates:
        bundle = write_bundle(creates)
        response = await fhir.transaction(bundle)
        answers = response.get("entry") or []
        for request, answer in zip(bundle["entry"], answers, strict=False):
            resource = request["resource"]
            if resource["resourceType"] == "Encounter":
                value = resource["identifier"][0]["value"]
                results[value] = _created({"entry": [answer]})
    # A bill another run created between our lookup and our create: bring it up to date too.
    raced = [w.month for w in creates if results.get(w.month.identifier_value) == "exists"]
    if raced:
        current = await existing_bills(fhir, raced)
        for month in raced:
            write = plan_write(month, current.get(month.identifier_value), recorded)
            if write.action == "update":
                results[month.identifier_value] = await _update(fhir, write, recorded)
    for write in writes:
        if write.action != "update":
            continue
        results[write.month.identifier_value] = await _update(fhir, write, recorded)
    return results


async def _cancel(fhir: FhirClient, write: Write, recorded: datetime) -> str:
    """Withdraw a bill with no time entry left; a version clash re-reads it and tries once
    more, then reports ``conflict``."""
    for attempt in range(2):
        try:
            await fhir.transaction(write_bundle([write]))
            return "cancelled"
        except (PreconditionFailed, Conflict):
            if attempt == 1:
                break
            current = (await existing_bills(fhir, [write.month])).get(write.month.identifier_value)
            if current is None:
                return "gone"
            write = plan_cancel(current, write.month.month, recorded)
            if write.action != "cancel":
                return "unchanged"
    return "conflict"


async def _update(fhir: FhirClient, write: Write, recorded: datetime) -> str:
    for attempt in range(2):
        try:
            await fhir.transaction(write_bundle([write]))
            return "updated"
        except (PreconditionFailed, Conflict):
            if attempt == 1:
                break
            current = (await existing_bills(fhir, [write.month])).get(write.month.identifier_value)
            write = plan_write(write.month, current, recorded)
            if write.action == "create":
                response = await fhir.transaction(write_bundle([write]))
                return _created(response)
            if write.action != "update":
                return _PLANNED.get(write.action, write.action)
    return "conflict"


# ------------------------------------------------------------------------------- report


def report_row(month: PatientMonth, result: str, changes: Iterable[str] = ()) -> dict[str, Any]:
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
        "changed": list(changes),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many patient-months ended in each result."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    return dict(sorted(counts.items()))


def reason_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many patient-months each not-billable reason held back (a workflow gap shows)."""
    counts: dict[str, int] = {}
    for row in rows:
        for reason in row["reasons"]:
            counts[reason["code"]] = counts.get(reason["code"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


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
        status = "billable" if row["billable"] else " ".join(r["code"] for r in row["reasons"])
        kind = f" ({row['month_kind']})" if row["month_kind"] else ""
        cells = (
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
        # Text cells: references, MRNs and payer names come from the input, never markup.
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    for item in rejected:
        minutes = f" ({item.minutes} min)" if item.minutes is not None else ""
        console.print(
            Text.assemble(("not counted", "yellow"), f" {item.reference}{minutes}: {item.reason}")
        )


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
        raise typer.Exit(EXIT_BAD_INPUT) from None
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
        notes.append(f"{the_month} has not ended: a preview, its time is still accruing (§4.3)")
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
        typer.echo(_csv(rows), nl=False)
    else:
        # Input-derived text (references, reasons) is printed as is: no markup, no emoji codes.
        console = Console(markup=False, emoji=False, highlight=False)
        _table(rows, rejected, console)
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
        # Like `apply` and `score`: the good input is billed, and a scheduler still sees that
        # some input was refused.
        raise typer.Exit(EXIT_BAD_INPUT)


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
                        results[value] = await _cancel(client, write, now)
        rows = [
            report_row(w.month, _result(w, results, client is not None), w.changes) for w in writes
        ]
        return RunReport(rows, rejected, errors, client.request_count if client else None)
    finally:
        if client is not None:
            await client.aclose()


_PLANNED = {
    "create": "would-create",
    "update": "would-update",
    "stale": "billed-not-billable",
    "cancel": "would-cancel",
}


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
    return _PLANNED[write.action]
