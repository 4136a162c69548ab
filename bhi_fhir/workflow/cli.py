"""`bhi-fhir apply`: run the BHI protocol over FHIR files (the shell around the pure engine).

Contract::

    bhi-fhir apply INPUT... --plan practice-plan.toml [--today YYYY-MM-DD]
                   [--out bundle.json] [--format json]

INPUT are Bundle / NDJSON / JSON files or directories (the bulk-export shape), any mix of
resource types, in any order. The transaction Bundle goes to ``--out``. With ``--format json``
stdout is exactly one JSON object::

    {"patients": [{"patient": "Patient/<id>", "actions": [{"rule", "resourceType",
                   "priority", "reason"}]}],
     "errors": [{"file", "line", "message"}]}

A bad line or resource goes to ``errors``; everything else is still processed, and the
exit code is 2 so a scheduled run notices (0 when there were no errors). A QuestionnaireResponse
without an id is not an error: it is named ``QuestionnaireResponse/sha256-<digest of its
content>`` (``instruments.observations.response_key``, the name its screening Observations
already use), so its crisis assessment is planned like any other and a re-run of the same file
finds it again; a changed copy of it counts as another response (a duplicate Task at worst,
never a lost crisis). Conditional creates are keyed by identifier and patient, so two merged
exports that reuse a response id do not share a crisis write.

Caseloads: new enrollments go to the care manager with the lowest active caseload.
The caseload of each manager is counted from the input while it is read — active BHI CarePlans
(SNOMED 718347000) naming the manager as a contributor (``workflow.caseload_manager``) — and
every enrollment the run plans is added as it is planned.

Merged records: a Patient with a ``link`` of type replaced-by (FHIR R4 Patient.link, "the
patient resource containing this link must no longer be used") hands its resources to the
surviving Patient it points to (followed through chains), when that Patient is in the input:
the surviving patient's facts and work then include the replaced record's screens, and the
replaced record itself gets nothing. When the surviving Patient is not in the input, nothing is
known about that person (deceased? enrolled?), so the replaced record's resources stay with it:
as an inactive record it gets no new work, except crisis work, which is never suppressed and
says which record replaces it. Merged groups are processed after the others (they may sit in
two buckets), held in memory: merges are rare.

Memory trade-off: inputs may be sorted arbitrarily (bulk export writes one file per resource
type), so a patient's resources are only complete once every input has been read. Resources are
partitioned by a hash of their patient into buckets: below ~64 MB of input one bucket is kept in
memory; above it, buckets are spilled to temporary NDJSON files and processed one at a time, so
peak memory is about one bucket (input size / bucket count), not the whole export, at the cost
of writing the input once more to disk. Patients are processed bucket by bucket, in sorted
order within a bucket.

The pipeline is :mod:`bhi_fhir.workflow.pipeline`; this module is the command around it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bhi_fhir.exit_codes import EXIT_DATAERR, exit_code_of
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.practice_plan import PracticePlanError, load_practice_plan
from bhi_fhir.workflow.pipeline import ApplyReport, BundleWriter, run_apply
from bhi_fhir.workflow.plan import Plan
from bhi_fhir.workflow.protocol import ProtocolError, default_protocol

__all__ = ["ApplyReport", "BundleWriter", "apply_command", "default_protocol", "run_apply"]


def _print_text(report: ApplyReport) -> None:
    for patient, lines in report.lines.items():
        typer.echo(patient)
        for line in lines:
            typer.echo(line)
    fired = sum(1 for p in report.patients if p["actions"])
    typer.echo(
        f"{len(report.patients)} patients, {fired} with actions, {report.writes} writes, "
        f"{len(report.errors)} errors"
    )
    if report.skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.skipped.items()))
        typer.echo(f"skipped (not read by the protocol): {kinds}")
    if report.future_dated:
        typer.echo(f"future-dated: {report.future_dated} screens after today, not read as facts")
    for err in report.errors:
        where = f"{err['file']}:{err['line']}" if err["line"] is not None else err["file"]
        typer.echo(f"error: {where}: {err['message']}", err=True)


def apply_command(
    inputs: Annotated[list[Path], typer.Argument(help="Bundle/NDJSON/JSON files or directories")],
    plan_file: Annotated[Path, typer.Option("--plan", help="practice-plan TOML")],
    today: Annotated[
        str | None,
        typer.Option("--today", help="YYYY-MM-DD (default: today in the plan's billing.timezone)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the transaction Bundle here")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="text or json")
    ] = OutputFormat.text,
    staff_feedback: Annotated[
        bool,
        typer.Option("--staff-feedback", help="also the staff workflow survey Tasks of today's "
                     "period (practice plan [feedback]), for a run over the whole caseload"),
    ] = False,
) -> None:
    """Run the BHI protocol over FHIR files: what fires, why, and the transaction Bundle."""
    offered(output_format, OutputFormat.json)
    try:
        fixed = date.fromisoformat(today) if today else None
    except ValueError:
        raise typer.BadParameter(f"{today!r} is not YYYY-MM-DD", param_hint="--today") from None
    try:
        plan = load_practice_plan(plan_file)
        protocol = default_protocol()
    except (PracticePlanError, ProtocolError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_of(exc)) from None
    day = fixed or plan.today()  # the practice's day (billing.timezone), not the host's
    writer = BundleWriter(out) if out is not None else None
    with _progress_bar() as tick:
        try:
            report = run_apply(list(inputs), plan, day, protocol,
                               sink=writer if writer is not None else _discard, progress=tick,
                               staff_feedback_tasks=staff_feedback)
        except BaseException:
            if writer is not None:
                writer.close(commit=False)
            raise
    if writer is not None:
        writer.close(commit=True)
    if output_format == "json":
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        _print_text(report)
        if out is not None:
            typer.echo(f"transaction Bundle: {out}")
    if report.errors:
        # Like `score`: the good input is processed and written, and a scheduler still sees
        # that some input was refused.
        raise typer.Exit(EXIT_DATAERR)


def _discard(plan: Plan) -> None:
    """No --out: the per-patient summary is all that is kept."""


@contextmanager
def _progress_bar() -> Iterator[Callable[[], None]]:
    """A patient counter on stderr when a person is watching; silent when piped or in CI."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.completed} patients"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("apply", total=None)
        yield lambda: bar.advance(task)
