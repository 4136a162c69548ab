"""``bhi-fhir score`` — score QuestionnaireResponses from files. A contract other tools use:
with ``--format json`` stdout is one JSON array, one object per response, with exactly the
keys in ``JSON_KEYS``. A bad input file gives one line on stderr and exit code 2; every other
file in the same call is still scored.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

from bhi_fhir.cli import app
from bhi_fhir.instruments.result import Score
from bhi_fhir.instruments.scoring import score_response, sex_of
from bhi_fhir.paths import profiles_dir
from bhi_fhir.sources import SourceError, read_resources

JSON_KEYS: Final = ("questionnaireResponse", "instrument", "status", "total", "severity",
                    "positive", "complete", "totalAtLeast", "totalAtMost", "flags")
EXIT_BAD_INPUT: Final = 2


class Context:
    """Questionnaires (by canonical url and by reference) and Patients (by reference)."""

    def __init__(self) -> None:
        self.questionnaires: dict[str, dict[str, Any]] = {}
        self.patients: dict[str, dict[str, Any]] = {}

    def add(self, resource: dict[str, Any]) -> None:
        kind, rid = resource.get("resourceType"), resource.get("id")
        if kind == "Questionnaire":
            if isinstance(resource.get("url"), str):
                self.questionnaires[resource["url"]] = resource
            if rid:
                self.questionnaires[f"Questionnaire/{rid}"] = resource
        elif kind == "Patient" and rid:
            self.patients[f"Patient/{rid}"] = resource

    def questionnaire_for(self, qr: dict[str, Any]) -> dict[str, Any] | None:
        canonical = qr.get("questionnaire")
        if not isinstance(canonical, str):
            return None
        return self.questionnaires.get(canonical) or self.questionnaires.get(
            canonical.split("|", 1)[0]
        )

    def sex_for(self, qr: dict[str, Any]) -> str | None:
        ref = (qr.get("subject") or {}).get("reference")
        return sex_of(self.patients.get(ref)) if isinstance(ref, str) else None


def score_files(
    paths: list[Path], questionnaires: list[Path], patients: list[Path]
) -> tuple[list[Score], list[SourceError]]:
    context = Context()
    errors: list[SourceError] = []
    for found in read_resources(sorted((profiles_dir() / "questionnaires").glob("*.json"))):
        if not isinstance(found, SourceError):
            context.add(found)
    for extra, kind in ((questionnaires, "Questionnaire"), (patients, "Patient")):
        for found in read_resources(extra, accept=(kind, "Bundle")):
            if isinstance(found, SourceError):
                errors.append(found)
            else:
                context.add(found)
    responses: list[dict[str, Any]] = []
    for found in read_resources(paths, accept=("QuestionnaireResponse", "Bundle")):
        if isinstance(found, SourceError):
            errors.append(found)
        elif found["resourceType"] == "QuestionnaireResponse":
            responses.append(found)
        else:
            context.add(found)
    scores = [
        score_response(qr, questionnaire=context.questionnaire_for(qr),
                       patient_sex=context.sex_for(qr))
        for qr in responses
    ]
    return scores, errors


def as_json(score: Score) -> dict[str, Any]:
    return {
        "questionnaireResponse": score.response_ref,
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
    }


@app.command("score")
def score_command(
    paths: Annotated[list[Path], typer.Argument(
        help="QuestionnaireResponse JSON, Bundle or NDJSON files, or directories of them.")],
    questionnaire: Annotated[list[Path] | None, typer.Option(
        "--questionnaire", "-q", help="Questionnaire JSON/Bundle giving answer weights.")] = None,
    patient: Annotated[list[Path] | None, typer.Option(
        "--patient", "-p", help="Patient JSON/Bundle (sex sets the AUDIT-C cut point).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="table (default) or json.")] = "table",
) -> None:
    """Score PHQ-9, PHQ-2, PHQ-A, GAD-7, GAD-2, C-SSRS, AUDIT-C and EPDS responses."""
    if output_format not in ("table", "json"):
        raise typer.BadParameter("must be 'table' or 'json'", param_hint="--format")
    scores, errors = score_files(paths, questionnaire or [], patient or [])
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for error in errors:
        err.print(f"error: {error}", markup=False)
    if output_format == "json":
        sys.stdout.write(json.dumps([as_json(s) for s in scores], indent=2) + "\n")
    else:
        _print_table(scores)
    if errors:
        raise typer.Exit(EXIT_BAD_INPUT)


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
    Console(highlight=False, width=width).print(table)
