"""The period's figures from patients' records, and their files (JSON, CSV, HTML). Pure.

``figures(...)`` is the one computation both surfaces call: the app's dashboard (from the
registry read model's rows plus the records) and ``bhi-fhir report`` (from a FHIR server or
an NDJSON folder). The renderers turn the same :class:`Figures` into a file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bhi_fhir.measures.common import Period
from bhi_fhir.measures.report import rated
from bhi_fhir.metrics.episode import (
    MeasureDefs,
    month_keys,
    patient_episode,
    survey_questionnaires,
)
from bhi_fhir.metrics.program import Metric, program_metrics
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry.rows import timeline_settings_for

__all__ = [
    "Figures",
    "csv_cell",
    "episodes_of",
    "figures",
    "measure_outcomes",
    "measure_titles",
    "metric_csv",
    "parse_period",
    "report_csv",
    "report_html",
    "report_json",
]

logger = logging.getLogger(__name__)

_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_period(text: str) -> Period:
    """``2026`` (a year), ``2026-Q3`` (a quarter), ``2026-10`` (a month) or
    ``2026-09-01..2026-11-30`` (both days included). ValueError otherwise."""
    text = text.strip()
    if (m := _YEAR.match(text)) is not None:
        return Period.year(int(m.group(1)))
    if (m := _QUARTER.match(text)) is not None:
        year, quarter = int(m.group(1)), int(m.group(2))
        return Period(date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter))
    if (m := _MONTH.match(text)) is not None:
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"no month {month}")
        return Period(date(year, month, 1), _month_end(year, month))
    if ".." in text:
        start, end = (date.fromisoformat(p) for p in text.split("..", 1))
        if end < start:
            raise ValueError("the period ends before it starts")
        return Period(start, end)
    raise ValueError("a year (2026), quarter (2026-Q3), month (2026-10) or "
                     "START..END (2026-09-01..2026-11-30)")


def _month_end(year: int, month: int) -> date:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return following - timedelta(days=1)


def measure_titles(measures: MeasureDefs) -> dict[str, str]:
    """Each measure's title, or each rate's (``<id>/<rate>``) of a several-rate measure."""
    titles: dict[str, str] = {}
    for measure in measures:
        if not measure.groups:
            titles[measure.id] = measure.title
        for rate, rate_title in measure.groups:
            titles[f"{measure.id}/{rate}"] = f"{measure.title}: {rate_title}"
    return titles


def measure_outcomes(measures: MeasureDefs, outcomes: Mapping[str, Sequence[Any]]
                     ) -> dict[str, list[frozenset[str]]]:
    """Each measure's (or rate's) patients' populations, from the outcomes by measure id."""
    found: dict[str, list[frozenset[str]]] = {}
    for measure in measures:
        for label, members in rated(measure, outcomes.get(measure.id, [])):
            found[label] = [frozenset(o.populations) for o in members]
    return found


@dataclass(frozen=True)
class Figures:
    period: Period
    today: date
    patients: int  # episodes the program metrics were computed over
    metrics: list[Metric]
    source: str  # where the records came from, for the file's header


def episodes_of(
    records: Mapping[str, Sequence[dict[str, Any]]],
    today: date,
    plan: PracticePlan | None,
    period: Period,
    *,
    rows: Mapping[str, Mapping[str, Any]] | None = None,
    measures: MeasureDefs = (),
) -> dict[str, dict[str, Any]]:
    """Each patient's episode (``bhi_fhir.metrics.episode``), with the registry row when given.
    A record that cannot be read is left out (the registry lists it flagged)."""
    episodes: dict[str, dict[str, Any]] = {}
    for patient, resources in records.items():
        if not resources:
            continue
        try:
            episodes[patient] = patient_episode(
                list(resources), today, plan, period,
                row=(rows or {}).get(patient), measures=measures)
        except Exception as exc:  # one unreadable record never costs the others theirs
            # No PHI: the error's type only (the registry lists the record flagged).
            logger.warning("metrics: a patient's record could not be read (%s)",
                           type(exc).__name__)
    return episodes


def figures(
    episodes: Sequence[Mapping[str, Any]],
    today: date,
    plan: PracticePlan | None,
    period: Period,
    *,
    measure_titles: Mapping[str, str] | None = None,
    measure_outcomes: Mapping[str, Sequence[frozenset[str]]] | None = None,
    feedback: Sequence[Mapping[str, Any]] | None = None,
    source: str = "",
) -> Figures:
    """The program metrics over the episodes (the population: the enrolled among them); the
    quality measures over ``measure_outcomes`` (each measure's own population) when given,
    else over the outcomes kept in the episodes."""
    capacity = ({m.display: m.capacity for m in plan.team.care_managers}
                if plan is not None else None)
    answers = feedback if feedback is not None else [
        r for e in episodes for r in e.get("feedback") or []]
    metrics = program_metrics(
        episodes, period, today, timeline_settings_for(plan),
        months=month_keys(period, today), measure_titles=measure_titles,
        measure_outcomes=measure_outcomes,
        capacity=capacity, feedback=answers, surveys=survey_questionnaires(),
    )
    enrolled = sum(1 for e in episodes if e.get("enrolled"))
    return Figures(period, today, enrolled, metrics, source)


# --------------------------------------------------------------------------- files
def csv_cell(value: Any) -> str:
    """A cell as text; a text cell a spreadsheet would run as a formula gets a leading quote
    (OWASP CSV injection)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) \
        else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def metric_csv(metric: Metric) -> str:
    """One metric's table with its own columns (the dashboard's download)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in metric.columns])
    for row in metric.rows:
        writer.writerow([csv_cell(c) for c in row])
    return out.getvalue()


def report_csv(result: Figures) -> str:
    """Every metric's table in one long CSV: metric, row, column, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "metric", "row", "column", "value"])
    for metric in result.metrics:
        for row in metric.rows:
            for column, value in zip(metric.columns[1:], row[1:], strict=False):
                writer.writerow([result.period.label, metric.id, csv_cell(row[0]),
                                 csv_cell(column), csv_cell(value)])
    return out.getvalue()


def report_json(result: Figures) -> str:
    return json.dumps({
        "period": {"start": result.period.start.isoformat(),
                   "end": result.period.end.isoformat(), "label": result.period.label},
        "today": result.today.isoformat(),
        "enrolledPatients": result.patients,
        "source": result.source,
        "metrics": [m.as_dict() for m in result.metrics],
    }, indent=2)


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(Path(__file__).parent)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True, lstrip_blocks=True,
    )


def bar_width(value: Any, metric: Metric) -> float:
    """A bar's width in percent of the widest value of the metric's first series."""
    if not isinstance(value, int | float):
        return 0.0
    if metric.percent:
        return max(0.0, min(100.0, float(value)))
    column = metric.series[0] if metric.series else 1
    top = max((float(c) for r in metric.rows if isinstance(c := r[column], int | float)),
              default=0.0)
    return round(float(value) * 100 / top, 1) if top else 0.0


def report_html(result: Figures) -> str:
    """A printable page: each metric's definition, headline, bars and table; no script."""
    template = _environment().get_template("report.html.j2")
    return template.render(figures=result, bar_width=bar_width)
