"""``bhi-fhir report --period 2026-Q3 (--server URL | --input FOLDER) --format html|csv|json
--output FILE``: the practice dashboard's figures, written to a file.

The same computation as the app's dashboard (:func:`bhi_fhir.metrics.figures.figures`) over
the registry's patients — those enrolled in the practice's BHI CarePlan, each with the
registry row the read model stores (``bhi_fhir.registry.rows.registry_row``):

* ``--server``: the enrolled patients' records as the registry reads them
  (``bhi_fhir.registry.reader``), and the quality measures over the population the measures
  read (``bhi_fhir.measures.cli.read_server``);
* ``--input``: NDJSON / Bundle / JSON files (a bulk export); every patient in them is read, the
  program metrics count the enrolled, the quality measures each measure's own population.

A bad input line or file is an ``error:`` line on stderr and exit 65 once the rest is counted
(as ``measure`` does); a server error exits as every server command does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from bhi_fhir import fhirjson
from bhi_fhir.exit_codes import EXIT_DATAERR
from bhi_fhir.fhir.auth_factory import (
    NO_AUTH,
    AuthSettings,
    checked_server,
    exit_on_failed_request,
    with_server_auth,
)
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.command_options import load_plan, parse_today
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.measures.cli import Run as MeasureRun
from bhi_fhir.measures.cli import measure_files, measure_patient, read_server
from bhi_fhir.measures.common import Period
from bhi_fhir.measures.report import MEASURES
from bhi_fhir.metrics.episode import FEEDBACK_SURVEYS, is_feedback
from bhi_fhir.metrics.figures import (
    Figures,
    episodes_of,
    figures,
    measure_outcomes,
    measure_titles,
    parse_period,
    report_csv,
    report_html,
    report_json,
)
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.paths import bundled_questionnaires
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry.model import compute_rows, enrollment_rule_of
from bhi_fhir.registry.reader import enrolled_ids, read_records
from bhi_fhir.registry.rows import enrolled_in
from bhi_fhir.sources import SourceError, read_resources

__all__ = ["figures_from_records", "report_command"]


def _titles() -> dict[str, str]:
    return measure_titles(list(MEASURES.values()))


def _outcomes(run: MeasureRun) -> dict[str, list[frozenset[str]]]:
    return measure_outcomes(list(MEASURES.values()), run.outcomes)


def figures_from_records(
    records: Mapping[str, list[Resource]],
    today: date,
    plan: PracticePlan | None,
    period: Period,
    *,
    measure_outcomes: Mapping[str, Sequence[frozenset[str]]] | None = None,
    feedback: Sequence[Mapping[str, Any]] | None = None,
    source: str = "",
) -> Figures:
    """The figures over the enrolled among ``records`` (patient id → the Patient first)."""
    rule = enrollment_rule_of(plan)
    enrolled = {i: r for i, r in records.items() if enrolled_in(r, rule)}
    rows = compute_rows(enrolled, today, plan)
    episodes = episodes_of(enrolled, today, plan, period, rows=rows)
    return figures(list(episodes.values()), today, plan, period, measure_titles=_titles(),
                   measure_outcomes=measure_outcomes, feedback=feedback, source=source)


def _records_from_files(paths: list[Path]) -> tuple[dict[str, list[Resource]],
                                                     list[Resource], list[SourceError]]:
    """Every patient's record (the Patient first), the feedback responses, the bad lines."""
    patients: dict[str, Resource] = {}
    others: dict[str, list[Resource]] = {}
    feedback: list[Resource] = []
    errors: list[SourceError] = []
    for item in read_resources(paths, local_references=True):
        if isinstance(item, SourceError):
            errors.append(item)
            continue
        if is_feedback(item):
            feedback.append(item)
        if item.get("resourceType") == "Patient":
            patients[str(item.get("id"))] = item
            continue
        ref = fhirjson.patient_of(item)
        if ref is not None and ref.startswith("Patient/"):
            others.setdefault(ref.split("/", 1)[1], []).append(item)
    records = {i: [patients[i], *others.get(i, [])] for i in sorted(patients)}
    return records, feedback, errors


async def _from_server(server: str, auth: Any, today: date, plan: PracticePlan | None,
                       period: Period, timeout: float) -> Figures:
    async with FhirClient(server, auth=auth, timeout=timeout) as fhir:
        ids = await enrolled_ids(fhir, enrollment_rule_of(plan))
        records = await read_records(fhir, ids)
        run = MeasureRun()
        measures = list(MEASURES.values())
        questionnaires = bundled_questionnaires()
        by_patient = await read_server(fhir, period)
        for patient in sorted(by_patient):
            measure_patient(patient, by_patient[patient], measures, period, questionnaires, run)
        # Both surveys' responses, the staff survey's too (no patient: not in any record).
        feedback = [r for canonical in FEEDBACK_SURVEYS async for r in fhir.search(
            "QuestionnaireResponse", {"questionnaire": canonical, "_count": "200"})
            if is_feedback(r)]
    return figures_from_records(records, today, plan, period, measure_outcomes=_outcomes(run),
                                feedback=feedback, source=server)


@with_server_auth
def report_command(
    period_text: Annotated[
        str, typer.Option("--period", help="2026 (year), 2026-Q3 (quarter), 2026-10 (month) "
                          "or 2026-09-01..2026-11-30")
    ],
    output: Annotated[Path, typer.Option("--output", help="file to write")],
    server: Annotated[
        str | None, typer.Option("--server", help="FHIR base URL to read from")
    ] = None,
    input_files: Annotated[
        list[Path] | None,
        typer.Option("--input", help="read NDJSON/Bundle/JSON files instead of a server"),
    ] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.html,
    plan: Annotated[Path | None, typer.Option("--plan", help="practice plan TOML")] = None,
    today: Annotated[
        str | None,
        typer.Option("--today", help="YYYY-MM-DD (default: today in the plan's billing.timezone)"),
    ] = None,
    credentials: AuthSettings = NO_AUTH,  # the seven auth options (with_server_auth)
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
) -> None:
    """Program metrics over a period (the dashboard's figures) as an HTML, CSV or JSON file."""
    offered(output_format, OutputFormat.html, OutputFormat.csv, OutputFormat.json, people=False)
    try:
        period = parse_period(period_text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--period") from None
    if (server is None) == (not input_files):
        raise typer.BadParameter("give --server or --input (one of them)", param_hint="--server")
    practice = load_plan(plan)
    day = parse_today(today) or practice.today()
    errors: list[SourceError] = []
    if server is not None:
        checked_server(server)
        auth = credentials.for_command(server, write=False)
        with exit_on_failed_request(f"error: report from {server} failed: "):
            result = asyncio.run(_from_server(server, auth, day, practice, period, timeout))
    else:
        paths = list(input_files or [])
        records, feedback, errors = _records_from_files(paths)
        run = measure_files(paths, list(MEASURES.values()), period)
        result = figures_from_records(
            records, day, practice, period, measure_outcomes=_outcomes(run),
            feedback=feedback, source=", ".join(p.name for p in paths))
    text = {OutputFormat.html: report_html, OutputFormat.csv: report_csv,
            OutputFormat.json: report_json}[output_format](result)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"report {result.period.label}: {len(result.metrics)} metrics over "
               f"{result.patients} enrolled patients written to {output}", err=True)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:  # input that could not be read: the rest was counted
        raise typer.Exit(EXIT_DATAERR)
