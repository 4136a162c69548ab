"""CMS159v14: Depression Remission at Twelve Months. Pure.

Follows the published FHIR CQL (cqframework/ecqm-content-qicore-2025
``input/cql/CMS159FHIRDepressionRemissionatTwelveMonths.cql``;
https://ecqi.healthit.gov/ecqm/ec/2026/cms0159v14):

- **Denominator Identification Period** = [period start − 14 months, period start − 2 months).
- **Depression encounter**: a finished Encounter whose ``type`` is in "Contact or Office
  Visit", whose period overlaps an active, confirmed diagnosis in "Major Depression Including
  Remission" or "Dysthymia", and which ends on a day of the identification period.
- **Index assessment**: the first PHQ-9 or PHQ-9M total > 9 (final, amended or corrected)
  dated from 7 days before the start of a depression encounter to its end.
- **Initial population = denominator**: age ≥ 12 at the index assessment.
- **Measure Assessment Period** = index date + 12 months, ± 60 days (both ends included).
- **Denominator exclusions**: hospice or palliative care from the start of the
  identification period to the end of the assessment period, death on or before the end of
  the assessment period, or an active confirmed bipolar, emotionally labile personality,
  schizophrenia/psychotic or pervasive developmental disorder diagnosed on or before it.
- **Numerator**: the last PHQ-9/PHQ-9M total in the assessment period is < 5.
- **Strata**: age 12–17 and ≥ 18 at the index assessment (the eCQI page; the FHIR CQL keeps
  them commented out for a tooling issue).

PHQ-9 and PHQ-9M totals are the scorer's ``phq9`` and ``phqa`` screens (LOINC 44261-6 and
89204-2, the value set "PHQ 9 and PHQ 9M Tools"): QuestionnaireResponses or Observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from bhi_fhir.codes import LOINC, SNOMED
from bhi_fhir.instruments.screens import screen_source
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Outcome,
    PatientData,
    Period,
    add_months,
    age_at,
    condition_is_active,
    condition_is_confirmed,
    condition_prevalence,
    conditions_in,
    day_of,
    days_back,
    days_on,
    encounter_days,
    fmt,
    has_code,
    overlaps,
    ref_of,
    unique,
)
from bhi_fhir.measures.valuesets import any_coding_in

__all__ = [
    "MEASURE_ID",
    "MENTAL_HEALTH_EXCLUSIONS",
    "STRATA",
    "assessment_window",
    "assessments",
    "died_by",
    "evaluate",
    "hospice_or_palliative",
    "identification_period",
]

MEASURE_ID: Final = "CMS159"
STRATA: Final = ("12-17", "18+")
REMISSION_BELOW: Final = 5  # "value < 5"
INDEX_ABOVE: Final = 9  # "value > 9"
WINDOW_DAYS: Final = 60  # 12 months ± 60 days (v7 onwards; v4–v6 used ± 30)
_PHQ9: Final = frozenset({"phq9", "phqa"})
_HOSPICE_DISCHARGE: Final = ("428361000124107", "428371000124100")  # to home / to a facility
_HOSPICE_MDS: Final = "45755-6"  # LOINC Hospice care [Minimum Data Set]
_YES: Final = "373066001"  # SNOMED Yes (qualifier value)
_FACIT_PAL: Final = "71007-9"  # LOINC FACIT-Pal
MENTAL_HEALTH_EXCLUSIONS: Final = ("Bipolar Disorder", "Personality Disorder Emotionally Labile",
                         "Schizophrenia or Psychotic Disorder", "Pervasive Developmental Disorder")
_NOT_DONE: Final = frozenset({"not-done", "entered-in-error", "unknown"})


@dataclass(frozen=True, slots=True)
class Assessment:
    day: date
    total: int
    ref: str | None


def identification_period(period: Period) -> tuple[date, date]:
    """[start − 14 months, start − 2 months) as the first and last day included."""
    return add_months(period.start, -14), days_back(add_months(period.start, -2), 1)


def assessment_window(index: date) -> tuple[date, date]:
    """The Measure Assessment Period: index + 12 months, ± 60 days."""
    anniversary = add_months(index, 12)
    return days_back(anniversary, WINDOW_DAYS), days_on(anniversary, WINDOW_DAYS)


def assessments(data: PatientData) -> list[Assessment]:
    """PHQ-9 / PHQ-9M totals of final screens, oldest first."""
    found = []
    for score in data.scores:
        day = day_of(score.authored)
        if score.instrument in _PHQ9 and score.final and score.total is not None and day:
            ref = screen_source(score) or (
                score.response_ref if (score.response_ref or "").count("/") == 1 else None)
            found.append(Assessment(day, score.total, ref))
    return sorted(found, key=lambda a: (a.day, a.ref or ""))


def _depression_encounters(
    data: PatientData, period: Period
) -> list[tuple[date, date, str | None, str | None]]:
    first, last = identification_period(period)
    diagnoses = [c for c in conditions_in(data, "Major Depression Including Remission",
                                          "Dysthymia")
                 if condition_is_active(c) and condition_is_confirmed(c)]
    found = []
    for encounter in data.of_type("Encounter"):
        if encounter.get("status") != "finished":
            continue
        if not any_coding_in(encounter.get("type"), "Contact or Office Visit"):
            continue
        days = encounter_days(encounter)
        if days is None or not first <= days[1] <= last:
            continue
        diagnosis = next((c for c in diagnoses if overlaps(condition_prevalence(c), days)), None)
        if diagnosis is not None:
            found.append((days[0], days[1], ref_of(encounter), ref_of(diagnosis)))
    return sorted(found, key=lambda e: (e[0], e[1], e[2] or ""))


def _between(value: object, start: date, end: date) -> bool:
    day = day_of(value)
    return day is not None and start <= day <= end


def _period_overlaps(resource: Mapping[str, Any], key: str, start: date, end: date) -> bool:
    value = resource.get(f"{key}DateTime")
    if value is not None:
        return _between(value, start, end)
    span = resource.get(f"{key}Period")
    if not isinstance(span, Mapping):
        return False
    low, high = day_of(span.get("start")), day_of(span.get("end"))
    return (low is None or low <= end) and (high is None or high >= start) and (
        low is not None or high is not None)


def hospice_or_palliative(
    data: PatientData, start: date, end: date, *, palliative: bool = True
) -> tuple[str, Mapping[str, Any]] | None:
    """Hospice or palliative care from ``start`` to ``end`` (the CQL's two definitions);
    hospice only with ``palliative=False`` (a measure that excludes hospice alone)."""
    for enc in data.of_type("Encounter"):
        days = encounter_days(enc)
        if days is None:
            continue
        hospitalization = enc.get("hospitalization") or {}
        if (enc.get("status") == "finished"
                and any_coding_in(enc.get("type"), "Encounter Inpatient")
                and any(has_code(hospitalization.get("dischargeDisposition"), SNOMED, c)
                        for c in _HOSPICE_DISCHARGE)
                and start <= days[1] <= end):
            return "discharged to hospice", enc
        if (any_coding_in(enc.get("type"), "Hospice Encounter")
                and enc.get("status") not in ("cancelled", "entered-in-error", "unknown")
                and overlaps(days, (start, end))):
            return "hospice encounter", enc
        if (palliative and enc.get("status") == "finished"
                and any_coding_in(enc.get("type"), "Palliative Care Encounter")
                and overlaps(days, (start, end))):
            return "palliative care encounter", enc
    for obs in data.of_type("Observation"):
        if obs.get("status") not in ("final", "amended", "corrected"):
            continue
        if not _period_overlaps(obs, "effective", start, end):
            continue
        if has_code(obs.get("code"), LOINC, _HOSPICE_MDS) and has_code(
                obs.get("valueCodeableConcept"), SNOMED, _YES):
            return "hospice care (MDS)", obs
        if palliative and has_code(obs.get("code"), LOINC, _FACIT_PAL):
            return "palliative care assessment (FACIT-Pal)", obs
    for req in data.of_type("ServiceRequest"):
        if (any_coding_in(req.get("code"), "Hospice Care Ambulatory")
                and req.get("status") in ("active", "completed")
                and req.get("intent") in ("order", "original-order", "reflex-order",
                                          "filler-order", "instance-order")
                and req.get("doNotPerform") is not True
                and _between(req.get("authoredOn"), start, end)):
            return "hospice care ordered", req
    for proc in data.of_type("Procedure"):
        if proc.get("status") in _NOT_DONE or not _period_overlaps(proc, "performed", start, end):
            continue
        if any_coding_in(proc.get("code"), "Hospice Care Ambulatory"):
            return "hospice care", proc
        if palliative and any_coding_in(proc.get("code"), "Palliative Care Intervention"):
            return "palliative care", proc
    for condition in conditions_in(data, "Hospice Diagnosis", "Palliative Care Diagnosis"):
        if (condition_is_active(condition) and condition_is_confirmed(condition)
                and overlaps(condition_prevalence(condition), (start, end))):
            hospice = any_coding_in(condition.get("code"), "Hospice Diagnosis")
            if not hospice and not palliative:
                continue
            return ("hospice diagnosis" if hospice else "palliative care diagnosis"), condition
    return None


def died_by(data: PatientData, end: date) -> bool:
    record = data.record
    if record is None:
        return False
    if record.get("deceasedBoolean") is True:
        return True
    value = record.get("deceasedDateTime")
    if not isinstance(value, str):
        return False
    earliest = day_of(value) or day_of(f"{value[:7]}-01" if len(value) == 7 else f"{value}-01-01")
    return earliest is not None and earliest <= end


def evaluate(data: PatientData, period: Period) -> Outcome | None:
    """The patient's CMS159 outcome for ``period``; None outside the initial population."""
    encounters = _depression_encounters(data, period)
    if not encounters:
        return None
    found = assessments(data)
    index: Assessment | None = None
    index_encounter = None
    for assessment in found:
        if assessment.total <= INDEX_ABOVE:
            continue
        index_encounter = next(
            (e for e in encounters if days_back(e[0], 7) <= assessment.day <= e[1]), None)
        if index_encounter is not None:
            index = assessment
            break
    if index is None or index_encounter is None:
        return None
    age = age_at(data.birth_date, index.day)
    if age is None or age < 12:
        return None
    stratum = STRATA[0] if age <= 17 else STRATA[1]
    low, high = assessment_window(index.day)
    pops = {INITIAL_POPULATION, DENOMINATOR}
    evaluated: list[str | None] = [index.ref, index_encounter[2], index_encounter[3]]
    notes = [f"index PHQ-9 {index.total} on {fmt(index.day)} (age {age}); assessment window "
             f"{fmt(low)} to {fmt(high)}"]
    extra: dict[str, Any] = {"index": fmt(index.day), "indexScore": index.total,
                             "window": [fmt(low), fmt(high)]}

    first, _ = identification_period(period)
    care = hospice_or_palliative(data, first, high)
    excluded = None
    if care is not None:
        excluded, resource = care
        evaluated.append(ref_of(resource))
    elif died_by(data, high):
        excluded = "patient died"
        evaluated.append(data.patient)
    else:
        disorder = next(
            (c for c in conditions_in(data, *MENTAL_HEALTH_EXCLUSIONS)
             if condition_is_active(c) and condition_is_confirmed(c)
             and (start := condition_prevalence(c)[0]) is not None and start <= high), None)
        if disorder is not None:
            excluded = "excluding mental health diagnosis"
            evaluated.append(ref_of(disorder))
    if excluded is not None:
        pops.add(DENOMINATOR_EXCLUSION)
        notes.append(f"excluded: {excluded}")
        return Outcome(MEASURE_ID, data.patient, frozenset(pops), stratum, unique(evaluated),
                       None, tuple(notes), extra)

    in_window = [a for a in found if low <= a.day <= high]
    reason = None
    if not in_window:
        reason = (f"no PHQ-9 between {fmt(low)} and {fmt(high)} (12 months ± {WINDOW_DAYS} days "
                  f"after the index PHQ-9 of {index.total} on {fmt(index.day)})")
    else:
        last = in_window[-1]
        evaluated.append(last.ref)
        extra["last"] = {"date": fmt(last.day), "score": last.total}
        if last.total < REMISSION_BELOW:
            pops.add(NUMERATOR)
            notes.append(f"remission: last PHQ-9 {last.total} on {fmt(last.day)}")
        else:
            reason = (f"last PHQ-9 between {fmt(low)} and {fmt(high)} was {last.total} on "
                      f"{fmt(last.day)}: not in remission (< {REMISSION_BELOW})"
                      + (f"; a PHQ-9 by {fmt(high)} can still count" if last.day < high else ""))
    return Outcome(MEASURE_ID, data.patient, frozenset(pops), stratum, unique(evaluated),
                   reason, tuple(notes), extra)
