"""``bhi-fhir score`` — score QuestionnaireResponses from files. A contract other tools use:
with ``--format json`` stdout is one JSON array, one object per response, with exactly the
keys in ``JSON_KEYS``. A bad input file, line or Bundle entry gives one line on stderr and exit
code 2; everything else in the same call is still scored. Resources that are not
QuestionnaireResponses or screens (a bulk-export folder's Patient.ndjson, vitals and labs in
Observation.ndjson, …) are skipped, one count line per file on stderr, not errors; Patients and
Questionnaires among them still give sex and answer weights.

Screens stored as Observations (US Core panels and totals, Synthea's DiagnosticReport and total,
a flowsheet total) are scored too, one object per screen with ``source`` naming the
Observation or DiagnosticReport (``questionnaireResponse`` null); one that repeats a response
given (bhi-fhir's own, ``derivedFrom`` it, or the same patient, instrument, day and total)
is not listed again (``bhi_fhir.instruments.screens``).

Streams: responses are scored and written as they are read, so memory stays flat however many
there are. The inputs are read twice: first for their Questionnaires, Patients and screening
Observations and reports (NDJSON lines that cannot hold one are not decoded; of Observations
only the screening ones are kept, so memory grows with the screens stored as Observations,
not with the export), then for the responses; the Observation screens come last.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

from bhi_fhir.exit_codes import EXIT_DATAERR, exit_code_of
from bhi_fhir.instruments.result import InstrumentId, Score
from bhi_fhir.instruments.scoring import score_response, sex_of
from bhi_fhir.instruments.screens import (
    OBSERVATION_KINDS,
    ScreenMerger,
    is_screening_resource,
    screen_source,
)
from bhi_fhir.instruments.spec import CutPoint
from bhi_fhir.output import OutputFormat, offered
from bhi_fhir.paths import profiles_dir
from bhi_fhir.practice_plan import PracticePlanError, load_practice_plan
from bhi_fhir.sources import SourceError, expand_paths, read_resources

JSON_KEYS: Final = ("questionnaireResponse", "instrument", "status", "total", "severity",
                    "positive", "complete", "totalAtLeast", "totalAtMost", "flags", "source")


SCORED: Final = "QuestionnaireResponse"
_CONTEXT_KINDS: Final = ("Questionnaire", "Patient", *OBSERVATION_KINDS)


class Context:
    """Questionnaires (by canonical url and by reference), Patients' sex (by reference) and
    the practice plan's cut points (None: each instrument's default)."""

    def __init__(self) -> None:
        self.questionnaires: dict[str, dict[str, Any]] = {}
        self.sexes: dict[str, str | None] = {}  # the sex only: a Patient is not kept whole
        # Screening Observations and reports only (is_screening_resource): a few per screen,
        # so memory grows with the screens stored that way, not with the export.
        self.screens: list[dict[str, Any]] = []
        # ``urn:uuid:<id>`` → ``Type/<id>``: a transaction Bundle's fullUrls (Synthea's are
        # its resources' ids), for the Patients and screens above.
        self.references: dict[str, str] = {}
        self.cut_points: Mapping[InstrumentId, CutPoint] | None = None

    def add(self, resource: dict[str, Any]) -> None:
        kind, rid = resource.get("resourceType"), resource.get("id")
        if kind == "Questionnaire":
            if isinstance(resource.get("url"), str):
                self.questionnaires[resource["url"]] = resource
            if rid:
                self.questionnaires[f"Questionnaire/{rid}"] = resource
        elif kind == "Patient" and rid:
            self.sexes[f"Patient/{rid}"] = sex_of(resource)
            self.references[f"urn:uuid:{rid}"] = f"Patient/{rid}"
        elif is_screening_resource(resource):
            self.screens.append(resource)
            if isinstance(rid, str) and rid:
                self.references[f"urn:uuid:{rid}"] = f"{kind}/{rid}"

    def questionnaire_for(self, qr: dict[str, Any]) -> dict[str, Any] | None:
        canonical = qr.get("questionnaire")
        if not isinstance(canonical, str):
            return None
        return self.questionnaires.get(canonical) or self.questionnaires.get(
            canonical.split("|", 1)[0]
        )

    def sex_for(self, qr: dict[str, Any]) -> str | None:
        subject = qr.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        return self.sexes.get(ref) if isinstance(ref, str) else None


def load_context(
    paths: list[Path], questionnaires: list[Path], patients: list[Path],
    on_error: Callable[[SourceError], None],
) -> Context:
    """The shipped Questionnaires, the --questionnaire/--patient files, then the Questionnaires
    and Patients among ``paths`` (their errors are reported by :func:`score_paths`)."""
    context = Context()
    for found in read_resources(sorted((profiles_dir() / "questionnaires").glob("*.json"))):
        if not isinstance(found, SourceError):
            context.add(found)
    for extra, kind in ((questionnaires, "Questionnaire"), (patients, "Patient")):
        for found in read_resources(extra, accept=(kind, "Bundle")):
            if isinstance(found, SourceError):
                on_error(found)
            else:
                context.add(found)
    for found in read_resources(paths, only=_CONTEXT_KINDS):
        if not isinstance(found, SourceError):
            context.add(found)
    return context


def score_paths(
    paths: list[Path], context: Context, on_error: Callable[[SourceError], None],
    on_skipped: Callable[[str, Counter[str]], None],
) -> Iterator[Score]:
    """Each QuestionnaireResponse in ``paths`` scored as it is read, then the screens stored
    as Observations (``context.screens``) that no response stood for (``ScreenMerger``); per
    file, the count of other resources goes to ``on_skipped``."""
    waiting = ScreenMerger(context.screens, references=context.references,
                           sex_of=lambda ref: context.sexes.get(ref or ""),
                           cut_points=context.cut_points)
    for path in expand_paths(paths, on_error):
        skipped: Counter[str] = Counter()
        for found in read_resources([path]):
            if isinstance(found, SourceError):
                on_error(found)
            elif found["resourceType"] == SCORED:
                score = score_response(found, questionnaire=context.questionnaire_for(found),
                                       patient_sex=context.sex_for(found),
                                       cut_points=context.cut_points)
                waiting.absorb(score)
                yield score
            elif not is_screening_resource(found):  # screens were read in the first pass
                skipped[found["resourceType"]] += 1
        if skipped:
            on_skipped(str(path), skipped)
    yield from waiting.remaining()


def as_json(score: Score) -> dict[str, Any]:
    source = screen_source(score)  # the Observation/DiagnosticReport a screen was read from
    return {
        "questionnaireResponse": None if source else score.response_ref,
        "instrument": score.instrument,
        "status": score.status,
        "total": score.total,
        "severity": score.severity,
        "positive": score.positive,
        "complete": score.complete,
        # the lowest / highest total the answers allow: what a positive-by-bound rests on
        "totalAtLeast": score.bounds[0] if score.bounds else None,
        "totalAtMost": score.bounds[1] if score.bounds else None,
        "flags": list(score.flags),
        "source": source,
    }


def score_command(
    paths: Annotated[list[Path], typer.Argument(
        help="QuestionnaireResponse JSON, Bundle or NDJSON files, or directories of them.")],
    questionnaire: Annotated[list[Path] | None, typer.Option(
        "--questionnaire", "-q", help="Questionnaire JSON/Bundle giving answer weights.")] = None,
    patient: Annotated[list[Path] | None, typer.Option(
        "--patient", "-p", help="Patient JSON/Bundle (sex sets the AUDIT-C cut point).")] = None,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", help="practice-plan TOML whose screening cut points to use "
        "(default: each instrument's published cut point).")] = None,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", help="table (default) or json.")] = OutputFormat.table,
) -> None:
    """Score PHQ-9, PHQ-2, PHQ-A, GAD-7, GAD-2, C-SSRS, AUDIT-C and EPDS responses."""
    offered(output_format, OutputFormat.json)
    # File names and record text are the user's: never read as markup or emoji codes
    # (``Export.ndjson:100:`` must not print as an emoji).
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
    errors = 0

    def on_error(error: SourceError) -> None:
        nonlocal errors
        errors += 1
        err.print(f"error: {error}")

    def on_skipped(path: str, counts: Counter[str]) -> None:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        err.print(f"skipped: {path}: {kinds} (not {SCORED})")

    try:
        plan = load_practice_plan(plan_file) if plan_file is not None else None
    except PracticePlanError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(exit_code_of(exc)) from None
    context = load_context(paths, questionnaire or [], patient or [], on_error)
    context.cut_points = plan.screening.cut_points if plan is not None else None
    scores = score_paths(paths, context, on_error, on_skipped)
    if output_format == "json":
        _write_json(scores)
    else:
        _print_table(list(scores))
    if errors:  # input that could not be read: the rest was scored
        raise typer.Exit(EXIT_DATAERR)


def _write_json(scores: Iterator[Score]) -> None:
    """One JSON array, written an object at a time (the same text as json.dumps(indent=2))."""
    out = sys.stdout
    opened = False
    for score in scores:
        out.write(",\n" if opened else "[\n")
        out.write(textwrap.indent(json.dumps(as_json(score), indent=2), "  "))
        opened = True
    out.write("\n]\n" if opened else "[]\n")


def _print_table(scores: list[Score]) -> None:
    table = Table(title=f"{len(scores)} response(s) scored")
    for column in ("response", "instrument", "total", "severity", "positive", "complete", "flags"):
        table.add_column(column, overflow="fold")
    for s in scores:
        crisis = "bold red" if s.suicide_risk else None
        table.add_row(
            (s.response_ref or "-").removeprefix("QuestionnaireResponse/"),
            s.instrument or "unrecognised",
            "-" if s.total is None else str(s.total), s.severity or "-",
            {True: "yes", False: "no", None: "-"}[s.positive], "yes" if s.complete else "no",
            ", ".join(s.flags) or "-", style=crisis,
        )
    width = shutil.get_terminal_size((140, 24)).columns  # piped: wide enough for a row per line
    Console(highlight=False, markup=False, emoji=False, width=width).print(table)
