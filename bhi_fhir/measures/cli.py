"""``bhi-fhir measure --period YYYY``: quality measures (CMS2, CMS159; HEDIS DSF-E, DMS-E,
DRR-E) as MeasureReports.

Reads a practice's data from a FHIR server (``--server``) or from files (``--input``:
NDJSON / Bundle / JSON, the bulk-export shape), groups it by patient, scores every screen with
the one scorer, and decides each measure per patient (:mod:`bhi_fhir.measures.cms2`,
:mod:`bhi_fhir.measures.cms159`). Output on stdout:

- ``--format json``: a ``collection`` Bundle of MeasureReports — per measure a ``summary``, a
  ``subject-list`` and one ``individual`` report per patient in the initial population;
- ``--format csv``: one row per measure and patient (populations, stratum, care-gap reason);
- ``--format table`` (default): the summary per measure and stratum, then the care gaps:
  each patient in a denominator but not in the numerator, with what to do.

``--write`` (with ``--server``) writes the reports back to that server, idempotently: each
report has a deterministic identifier, a new one is a conditional create, a changed one a
versioned update, an unchanged one no write (:func:`bhi_fhir.measures.report.plan_writes`).
A bad ``--input`` line or file is one ``error:`` line on stderr and exit 65 once the rest is
measured, as ``apply``, ``score`` and ``bill`` do; a server error exits with
:func:`bhi_fhir.fhir.errors.exit_code_for`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bhi_fhir import fhirjson
from bhi_fhir.codes import BHI_IDENTIFIER, LOINC
from bhi_fhir.exit_codes import EXIT_DATAERR
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.instruments.registry import INSTRUMENTS
from bhi_fhir.instruments.scoring import sex_of
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.measures.cms2 import ADOLESCENT_SCREEN, ADULT_SCREEN
from bhi_fhir.measures.cms159 import identification_period
from bhi_fhir.measures.common import POPULATIONS, Outcome, PatientData, Period
from bhi_fhir.measures.report import (
    MEASURES,
    MeasureDef,
    Write,
    identifier_of,
    individual_report,
    plan_writes,
    rate,
    rated,
    subject_list_report,
    summary_report,
)
from bhi_fhir.output import OutputFormat, offered, write_output
from bhi_fhir.paths import bundled_questionnaires
from bhi_fhir.sources import PatientBuckets, SourceError, expand_paths, read_resources

# What the measures read; the rest of an export is dropped as it is read.
_TYPES = frozenset({
    "Patient", "Encounter", "Condition", "Observation", "DiagnosticReport",
    "QuestionnaireResponse", "MedicationRequest", "ServiceRequest", "Procedure",
    "MedicationDispense",
})
_BUCKET_BYTES = 32 * 1024 * 1024
_LOOKUP_CHUNK = 50
_WRITE_CHUNK = 100
# Observations the measures read besides screens: CMS2's screening assessments, CMS159's
# hospice (MDS) and palliative (FACIT-Pal) assessments.
_MEASURE_OBSERVATIONS = (ADULT_SCREEN, ADOLESCENT_SCREEN, "45755-6", "71007-9")


@dataclass
class Run:
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)
    patients: int = 0
    requests: int | None = None
    writes: list[Write] = field(default_factory=list)


def measure_patient(
    patient: str, resources: Sequence[Resource], measures: Sequence[MeasureDef], period: Period,
    questionnaires: dict[str, Resource], run: Run,
) -> None:
    """Score one patient's screens and decide every measure for them."""
    own = [r for r in resources if r.get("resourceType") == "Patient"]
    record = next((r for r in own if fhirjson.patient_of(r) == patient), None)
    scores = screening_scores(resources, questionnaires=questionnaires,
                              patient_sex=sex_of(record), on_error=lambda r, e: None)
    data = PatientData(patient, resources, tuple(scores))
    run.patients += 1
    for measure in measures:
        outcome = measure.evaluate(data, period)
        if outcome is not None:
            run.outcomes.setdefault(measure.id, []).append(outcome)


def measure_files(paths: list[Path], measures: Sequence[MeasureDef], period: Period) -> Run:
    """Every patient in ``paths``, a bucket of patients at a time (as ``bill`` reads)."""
    run = Run()
    questionnaires = bundled_questionnaires()
    total = sum(p.stat().st_size for p in expand_paths(paths) if p.is_file())
    count = max(1, -(-total // _BUCKET_BYTES))
    with tempfile.TemporaryDirectory(prefix="bhi-fhir-measure-") as tmp:
        buckets = PatientBuckets(count, Path(tmp) if count > 1 else None)
        for item in read_resources(paths, local_references=True):
            if isinstance(item, SourceError):
                run.errors.append(item)
                continue
            if item["resourceType"] not in _TYPES:
                continue
            patient = fhirjson.patient_of(item)
            if patient is not None:
                buckets.add(patient, item, ("", None))
        for bucket in buckets:
            grouped: dict[str, list[Resource]] = {}
            for resource, _ in bucket:
                grouped.setdefault(fhirjson.patient_of(resource) or "", []).append(resource)
            for patient in sorted(grouped):
                measure_patient(patient, grouped[patient], measures, period, questionnaires, run)
    _sort(run)
    return run


def _sort(run: Run) -> None:
    for outcomes in run.outcomes.values():
        outcomes.sort(key=lambda o: o.patient)


def _searches(period: Period) -> list[tuple[str, dict[str, Any]]]:
    """What to read from a server: everything the measures may look at for ``period`` (from
    the start of CMS159's identification period, a week earlier for its index window)."""
    since = (identification_period(period)[0] - timedelta(days=8)).isoformat()
    screen_codes = sorted({c for spec in INSTRUMENTS for c in (spec.panel_code, spec.total_code)
                           if c} | set(_MEASURE_OBSERVATIONS))
    panels = sorted({spec.panel_code for spec in INSTRUMENTS if spec.panel_code})
    return [
        ("Patient", {}),
        ("Encounter", {"date": f"ge{since}"}),
        ("Condition", {}),
        ("Observation", {"code": ",".join(f"{LOINC}|{c}" for c in screen_codes)}),
        ("DiagnosticReport", {"code": ",".join(f"{LOINC}|{c}" for c in panels)}),
        ("QuestionnaireResponse", {"authored": f"ge{since}"}),
        ("MedicationRequest", {"authoredon": f"ge{since}"}),
        ("MedicationDispense", {"whenhandedover": f"ge{since}"}),
        ("ServiceRequest", {"authored": f"ge{since}"}),
        ("Procedure", {"date": f"ge{since}"}),
    ]


async def read_server(fhir: FhirClient, period: Period) -> dict[str, list[Resource]]:
    """The server's resources the measures read, by patient."""

    async def all_of(kind: str, params: dict[str, Any]) -> list[Resource]:
        return [r async for r in fhir.search(kind, {**params, "_count": "500"})]

    searches = _searches(period)
    groups = await asyncio.gather(*(all_of(kind, params) for kind, params in searches))
    by_patient: dict[str, list[Resource]] = {}
    seen: set[str] = set()
    for group in groups:
        for resource in group:
            key = f"{resource.get('resourceType')}/{resource.get('id')}"
            patient = fhirjson.patient_of(resource)
            if patient is None or key in seen:
                continue
            seen.add(key)
            by_patient.setdefault(patient, []).append(resource)
    return by_patient


async def existing_reports(fhir: FhirClient, identifiers: Iterable[str]) -> dict[str, Resource]:
    """identifier value → the MeasureReport the server holds (``no-cache``, so a search cache
    cannot hide a report written a moment ago)."""
    values = sorted(set(identifiers))
    found: dict[str, Resource] = {}
    for i in range(0, len(values), _LOOKUP_CHUNK):
        chunk = set(values[i:i + _LOOKUP_CHUNK])
        params = {"identifier": ",".join(f"{BHI_IDENTIFIER}|{v}" for v in sorted(chunk)),
                  "_count": str(2 * _LOOKUP_CHUNK)}
        response = await fhir.request("GET", "MeasureReport", params=params,
                                      headers={"Cache-Control": "no-cache"})
        for entry in response.json().get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and (value := identifier_of(resource)) in chunk:
                found.setdefault(str(value), resource)
    return found


def build_reports(run: Run, measures: Sequence[MeasureDef], period: Period,
                  when: str) -> list[Resource]:
    reports: list[Resource] = []
    for measure in measures:
        outcomes = run.outcomes.get(measure.id, [])
        reports.append(summary_report(measure, period, outcomes, when))
        reports.append(subject_list_report(measure, period, outcomes, when))
        reports.extend(individual_report(measure, period, o, when) for o in outcomes)
    return reports


async def write_reports(fhir: FhirClient, reports: list[Resource]) -> list[Write]:
    existing = await existing_reports(fhir, (str(identifier_of(r)) for r in reports))
    writes = plan_writes(reports, existing)
    entries = [w.entry for w in writes if w.entry is not None]
    for i in range(0, len(entries), _WRITE_CHUNK):
        await fhir.transaction({"resourceType": "Bundle", "type": "transaction",
                                "entry": entries[i:i + _WRITE_CHUNK]})
    return writes


async def _run_server(server: str, auth: httpx.Auth | None, measures: Sequence[MeasureDef],
                      period: Period, write: bool, when: str) -> tuple[Run, list[Resource]]:
    run = Run()
    questionnaires = bundled_questionnaires()
    async with FhirClient(server, auth=auth) as fhir:
        by_patient = await read_server(fhir, period)
        for patient in sorted(by_patient):
            measure_patient(patient, by_patient[patient], measures, period, questionnaires, run)
        _sort(run)
        reports = build_reports(run, measures, period, when)
        if write:
            run.writes = await write_reports(fhir, reports)
        run.requests = fhir.request_count
    return run, reports


def _parse_period(text: str) -> Period:
    try:
        year = int(text)
    except ValueError:
        raise typer.BadParameter("a calendar year, e.g. 2026", param_hint="--period") from None
    if not 1900 <= year <= 9999:
        raise typer.BadParameter("a calendar year, e.g. 2026", param_hint="--period")
    return Period.year(year)


def _rows(run: Run, measures: Sequence[MeasureDef]) -> list[dict[str, Any]]:
    return [
        {"measure": label, "patient": o.patient, "stratum": o.stratum or "",
         **{code: int(o.has(code)) for code in POPULATIONS},
         "care_gap": o.reason or "", "evaluated": " ".join(o.evaluated)}
        for measure in measures
        for label, outcomes in rated(measure, run.outcomes.get(measure.id, []))
        for o in outcomes
    ]


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = ["measure", "patient", "stratum", *POPULATIONS, "care_gap", "evaluated"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _table(run: Run, measures: Sequence[MeasureDef], period: Period, console: Console) -> None:
    table = Table(title=f"Quality measures {period.label} ({run.patients} patients read)")
    for column in ("measure", "stratum", "initial pop.", "denominator", "exclusions",
                   "exceptions", "numerator", "rate"):
        table.add_column(column)
    for measure in measures:
        for label, outcomes in rated(measure, run.outcomes.get(measure.id, [])):
            groups = [("all", outcomes)] + [
                (s, [o for o in outcomes if o.stratum == s]) for s in measure.strata]
            for name, members in groups:
                counts = [str(sum(o.has(c) for o in members)) for c in POPULATIONS]
                table.add_row(label, name, *counts, _percent(rate(members)))
    console.print(table)
    gaps = [(label, o) for m in measures
            for label, outcomes in rated(m, run.outcomes.get(m.id, [])) for o in outcomes
            if o.gap]
    if gaps:
        care = Table(title="Care gaps: in the denominator, not in the numerator")
        for column in ("measure", "patient", "what to do"):
            care.add_column(column)
        for measure_id, outcome in gaps:
            care.add_row(measure_id, outcome.patient, outcome.reason or "")
        console.print(care)


@with_server_auth
def measure_command(
    period_text: Annotated[str, typer.Option("--period", help="measurement year, e.g. 2026")],
    server: Annotated[
        str | None, typer.Option("--server", help="FHIR base URL to read from (and write to)")
    ] = None,
    input_files: Annotated[
        list[Path] | None,
        typer.Option("--input", help="read NDJSON/Bundle/JSON files instead of a server"),
    ] = None,
    measure_ids: Annotated[
        list[str] | None,
        typer.Option("--measure", help=f"measure id ({', '.join(MEASURES)}), repeatable; "
                     "default all"),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    write: Annotated[
        bool, typer.Option("--write", help="write the MeasureReports back to --server "
                           "(idempotent: created, updated or left unchanged)")
    ] = False,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
) -> None:
    """Quality measures (CMS2, CMS159; HEDIS DSF-E, DMS-E, DRR-E) over a measurement year, as
    FHIR MeasureReports."""
    offered(output, OutputFormat.json, OutputFormat.csv)  # a usage error before any work
    period = _parse_period(period_text)
    if (server is None) == (not input_files):
        raise typer.BadParameter("give --server or --input (one of them)", param_hint="--server")
    if write and server is None:
        raise typer.BadParameter("--write writes to --server", param_hint="--write")
    wanted = [m.upper() for m in measure_ids or MEASURES]
    unknown = [m for m in wanted if m not in MEASURES]
    if unknown:
        raise typer.BadParameter(f"unknown measure {', '.join(unknown)}; known: "
                                 f"{', '.join(MEASURES)}", param_hint="--measure")
    measures = [MEASURES[m] for m in dict.fromkeys(wanted)]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    if server is not None:
        checked_server(server)
        auth = credentials.for_command(server)
        with exit_on_failed_request("error: "):
            run, reports = asyncio.run(_run_server(server, auth, measures, period, write, when))
    else:
        run = measure_files(list(input_files or []), measures, period)
        reports = build_reports(run, measures, period, when)
    write_output(
        output,
        people=lambda console: _table(run, measures, period, console),
        document=lambda: {"resourceType": "Bundle", "type": "collection", "timestamp": when,
                          "entry": [{"resource": r} for r in reports]},
        csv=lambda: _csv(_rows(run, measures)),
    )
    if run.writes:
        done = {a: sum(w.action == a for w in run.writes) for a in ("create", "update",
                                                                      "unchanged")}
        typer.echo("MeasureReports: " + ", ".join(f"{k} {v}" for k, v in done.items()),
                   err=True)
    for error in run.errors:
        typer.echo(f"error: {error}", err=True)
    if run.errors:  # input that could not be read: the rest was measured
        raise typer.Exit(EXIT_DATAERR)

