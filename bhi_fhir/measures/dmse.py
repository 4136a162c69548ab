"""HEDIS DMS-E: Utilization of the PHQ-9 to Monitor Depression Symptoms for Adolescents and
Adults. Pure.

From NCQA's public description ("members 12 years of age and older with a diagnosis of major
depression or dysthymia, who had an outpatient encounter with a PHQ-9 score present in their
record in the same assessment period as the encounter",
https://vdocument.in/utilization-of-the-phq-9-to-monitor-depression-symptoms-.html, NCQA
measure 0245, adapted from MNCM NQF #0712 / CMS160). NCQA's own specification and value sets
are not public; what stands in for them is said below.

- The measurement period is cut into three 4-month **assessment periods**
  (:data:`ASSESSMENT_PERIODS`); each is one rate (one FHIR Measure group).
- **Initial population = denominator, per assessment period**: age 12 or older on January 1
  of the measurement period; an active, confirmed diagnosis of major depression or dysthymia
  (eCQM value sets "Major Depression Including Remission", "Dysthymia") and an outpatient
  encounter overlapping it in that assessment period (finished, eCQM "Contact or Office
  Visit" or "Telephone Visits" standing in for HEDIS "Outpatient"/"Telephone Visits").
- **Exclusions** (those of the MNCM depression measures it is adapted from, as CMS159 reads
  them): hospice or palliative care during the measurement period, death by its end, bipolar,
  emotionally labile personality, schizophrenia/psychotic or pervasive developmental disorder
  diagnosed by its end.
- **Numerator, per assessment period**: a PHQ-9 or PHQ-9M total (eCQM "PHQ 9 and PHQ 9M
  Tools"; QuestionnaireResponse or Observation) dated in that assessment period.
- **Strata** by age on January 1: 12–17, 18–64, 65+ (:data:`STRATA`, as DSF-E).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from bhi_fhir.measures.cms159 import (
    MENTAL_HEALTH_EXCLUSIONS,
    assessments,
    died_by,
    hospice_or_palliative,
)
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
    combine,
    condition_is_active,
    condition_is_confirmed,
    condition_prevalence,
    conditions_in,
    days_back,
    encounter_days,
    fmt,
    overlaps,
    ref_of,
    unique,
)
from bhi_fhir.measures.dsfe import stratum_of
from bhi_fhir.measures.valuesets import any_coding_in

__all__ = ["ASSESSMENT_PERIODS", "MEASURE_ID", "RATES", "STRATA", "assessment_periods",
           "evaluate"]

MEASURE_ID: Final = "DMS-E"
STRATA: Final = ("12-17", "18-64", "65+")
MINIMUM_AGE: Final = 12
# Three 4-month assessment periods, as (first month, months long): January–April, May–August,
# September–December. UNVERIFIED [M]: the reference records them as "believed to be" these;
# CMS160 (the MNCM measure DMS is adapted from) used the same three 4-month periods.
ASSESSMENT_PERIODS: Final = ((1, 4), (5, 4), (9, 4))
RATES: Final = tuple(f"period-{n}" for n in range(1, len(ASSESSMENT_PERIODS) + 1))
_VISITS: Final = ("Contact or Office Visit", "Telephone Visits")
_DEPRESSION: Final = ("Major Depression Including Remission", "Dysthymia")


def assessment_periods(period: Period) -> list[tuple[str, date, date]]:
    """(rate id, first day, last day) of each assessment period of the measurement year."""
    found = []
    for rate, (month, length) in zip(RATES, ASSESSMENT_PERIODS, strict=True):
        first = date(period.start.year, month, 1)
        found.append((rate, first, days_back(add_months(first, length), 1)))
    return found


def _depression_visits(
    data: PatientData, first: date, last: date
) -> list[tuple[date, Mapping[str, Any], Mapping[str, Any]]]:
    """Finished outpatient encounters in [first, last] overlapping an active confirmed major
    depression or dysthymia diagnosis, with that diagnosis."""
    diagnoses = [c for c in conditions_in(data, *_DEPRESSION)
                 if condition_is_active(c) and condition_is_confirmed(c)]
    found = []
    for encounter in data.of_type("Encounter"):
        days = encounter_days(encounter)
        if (encounter.get("status") != "finished" or days is None
                or not any_coding_in(encounter.get("type"), *_VISITS)
                or not overlaps(days, (first, last))):
            continue
        diagnosis = next((c for c in diagnoses if overlaps(condition_prevalence(c), days)), None)
        if diagnosis is not None:
            found.append((days[0], encounter, diagnosis))
    return sorted(found, key=lambda v: (v[0], str(v[1].get("id", ""))))


def _excluded(data: PatientData, period: Period) -> tuple[str, str | None] | None:
    care = hospice_or_palliative(data, period.start, period.end)
    if care is not None:
        return care[0], ref_of(care[1])
    if died_by(data, period.end):
        return "patient died", data.patient
    for condition in conditions_in(data, *MENTAL_HEALTH_EXCLUSIONS):
        start = condition_prevalence(condition)[0]
        if (condition_is_active(condition) and condition_is_confirmed(condition)
                and start is not None and start <= period.end):
            return "excluding mental health diagnosis", ref_of(condition)
    return None


def evaluate(data: PatientData, period: Period) -> Outcome | None:
    """The patient's DMS-E outcome for ``period`` (one rate per assessment period with a
    depression visit, in ``Outcome.rates``); None outside the initial population."""
    age = age_at(data.birth_date, period.start)
    if age is None or age < MINIMUM_AGE:
        return None
    stratum = stratum_of(age)
    visits = {rate: _depression_visits(data, first, last)
              for rate, first, last in assessment_periods(period)}
    if not any(visits.values()):
        return None
    excluded = _excluded(data, period)
    phq9 = assessments(data)
    rates: dict[str, Outcome] = {}
    for rate, first, last in assessment_periods(period):
        seen = visits[rate]
        if not seen:
            continue
        pops = {INITIAL_POPULATION, DENOMINATOR}
        evaluated: list[str | None] = [ref_of(seen[-1][1]), ref_of(seen[-1][2])]
        if excluded is not None:
            pops.add(DENOMINATOR_EXCLUSION)
            rates[rate] = Outcome(MEASURE_ID, data.patient, frozenset(pops), stratum,
                                  unique([*evaluated, excluded[1]]), None,
                                  (f"excluded: {excluded[0]}",))
            continue
        scored = [a for a in phq9 if first <= a.day <= last]
        if scored:
            pops.add(NUMERATOR)
            rates[rate] = Outcome(
                MEASURE_ID, data.patient, frozenset(pops), stratum,
                unique([*evaluated, *(a.ref for a in scored)]), None,
                (f"PHQ-9 {scored[-1].total} on {fmt(scored[-1].day)}",))
        else:
            rates[rate] = Outcome(
                MEASURE_ID, data.patient, frozenset(pops), stratum, unique(evaluated),
                f"no PHQ-9 between {fmt(first)} and {fmt(last)} (depression visit on "
                f"{fmt(seen[-1][0])}): a PHQ-9 by {fmt(last)} counts, at a visit or by phone "
                "or portal", ())
    return combine(MEASURE_ID, data.patient, rates, stratum)
