"""HEDIS DRR-E: Depression Remission or Response for Adolescents and Adults. Pure.

From NCQA's public description (https://ncqa.org/report-cards/health-plans/state-of-health-
care-quality-report/measures-list/depression-remission-or-response-for-adolescents-and-adults-
drr-e) and Horizon BCBSNJ's MY2023 tip sheet (https://www.horizonblue.com/providers/resources/
hedis-resources/hedis-measurement-year-my-2023-provider-tips-optimizing-hedis-results/
depression-remission-or-response-adolescents-and-adults-drr-e). NCQA's own specification and
value sets are not public; what stands in for them is said below.

- **Index episode start date (IESD)**: the first PHQ-9 or PHQ-9M total above
  :data:`ELEVATED_ABOVE` in the intake period (:func:`intake_period`) on a day a confirmed
  diagnosis of major depression or dysthymia covers, onset to abatement (eCQM value sets "Major
  Depression Including Remission", "Dysthymia", standing in for HEDIS "Major Depression and
  Dysthymia").
- **Initial population = denominator**: age 12 or older at the IESD. Strata by that age:
  12–17, 18–64, 65+ (:data:`STRATA`, as DSF-E).
- **Depression follow-up period**: :data:`WINDOW_FIRST_DAY` to :data:`WINDOW_LAST_DAY` days
  after the IESD, both included ("within 120–240 days (4–8 months)").
- **Exclusions** (those of the MNCM measure it is adapted from, as CMS159 reads them): hospice
  or palliative care from the start of the intake period to the end of the follow-up period,
  death by its end, bipolar, emotionally labile personality, schizophrenia/psychotic or
  pervasive developmental disorder diagnosed by its end.
- **Rates** (one FHIR Measure group each): ``follow-up`` — a PHQ-9 total in the follow-up
  period (at a visit, by phone or by portal); ``remission`` — the *most recent* one is below
  :data:`REMISSION_BELOW`; ``response`` — the most recent one is at least 50% lower than the
  IESD's.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from bhi_fhir.measures.cms159 import (
    MENTAL_HEALTH_EXCLUSIONS,
    Assessment,
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
    age_at,
    combine,
    condition_is_active,
    condition_is_confirmed,
    condition_prevalence,
    conditions_in,
    days_on,
    fmt,
    ref_of,
    unique,
)
from bhi_fhir.measures.dsfe import stratum_of

__all__ = [
    "ELEVATED_ABOVE", "FOLLOW_UP", "MEASURE_ID", "RATES", "REMISSION", "REMISSION_BELOW",
    "RESPONSE", "STRATA", "WINDOW_FIRST_DAY", "WINDOW_LAST_DAY", "evaluate", "follow_up_window",
    "index_episode", "intake_period",
]

MEASURE_ID: Final = "DRR-E"
FOLLOW_UP: Final = "follow-up"
REMISSION: Final = "remission"
RESPONSE: Final = "response"
RATES: Final = (FOLLOW_UP, REMISSION, RESPONSE)
STRATA: Final = ("12-17", "18-64", "65+")
MINIMUM_AGE: Final = 12
# "An elevated PHQ-9" at the IESD: a total above 9. UNVERIFIED [M]: the reference records
# ">9" as believed correct (it is CMS159's index threshold, the MNCM measure DRR-E comes from).
ELEVATED_ABOVE: Final = 9
REMISSION_BELOW: Final = 5  # "most recent PHQ-9 score of <5"
# "At least 50 percent lower than the PHQ-9 score associated with the IESD".
RESPONSE_DROP: Final = 0.5
WINDOW_FIRST_DAY: Final = 120  # "within 120-240 days (4-8 months)" after the elevated score
WINDOW_LAST_DAY: Final = 240
# The intake period, where the IESD may fall: (years from the measurement year, month, day) of
# its first and last day, May 1 of the year before to April 30 of the measurement year.
# UNVERIFIED [M]: derived from "an elevated PHQ-9 score in the last 20 months" (Ursa Health's
# DRR description, https://docs.ursahealth.com/v1/docs/ursa-quality-drr2-depression-screening-
# remission-drr2) less the 8 months (240 days) of follow-up, which then end within the year.
INTAKE: Final = ((-1, 5, 1), (0, 4, 30))
_DEPRESSION: Final = ("Major Depression Including Remission", "Dysthymia")


def intake_period(period: Period) -> tuple[date, date]:
    (y0, m0, d0), (y1, m1, d1) = INTAKE
    return date(period.start.year + y0, m0, d0), date(period.start.year + y1, m1, d1)


def follow_up_window(iesd: date) -> tuple[date, date]:
    return days_on(iesd, WINDOW_FIRST_DAY), days_on(iesd, WINDOW_LAST_DAY)


def index_episode(data: PatientData, period: Period) -> tuple[Assessment, str | None] | None:
    """The IESD's PHQ-9 and the depression diagnosis that covers its day."""
    first, last = intake_period(period)
    diagnoses = [c for c in conditions_in(data, *_DEPRESSION) if condition_is_confirmed(c)]
    for assessment in assessments(data):
        if not first <= assessment.day <= last or assessment.total <= ELEVATED_ABOVE:
            continue
        for condition in diagnoses:
            start, end = condition_prevalence(condition)
            if (start is not None and start <= assessment.day
                    and (end is None or assessment.day <= end)):
                return assessment, ref_of(condition)
    return None


def _excluded(data: PatientData, start: date, end: date) -> tuple[str, str | None] | None:
    care = hospice_or_palliative(data, start, end)
    if care is not None:
        return care[0], ref_of(care[1])
    if died_by(data, end):
        return "patient died", data.patient
    for condition in conditions_in(data, *MENTAL_HEALTH_EXCLUSIONS):
        onset = condition_prevalence(condition)[0]
        if (condition_is_active(condition) and condition_is_confirmed(condition)
                and onset is not None and onset <= end):
            return "excluding mental health diagnosis", ref_of(condition)
    return None


def _responded(last: int, index: int) -> bool:
    return last <= index * RESPONSE_DROP


def evaluate(data: PatientData, period: Period) -> Outcome | None:
    """The patient's DRR-E outcome for ``period`` (rates ``follow-up``, ``remission`` and
    ``response`` in ``Outcome.rates``); None outside the initial population."""
    found = index_episode(data, period)
    if found is None:
        return None
    index, diagnosis = found
    age = age_at(data.birth_date, index.day)
    if age is None or age < MINIMUM_AGE:
        return None
    stratum = stratum_of(age)
    low, high = follow_up_window(index.day)
    base = frozenset({INITIAL_POPULATION, DENOMINATOR})
    evaluated = [index.ref, diagnosis]
    extra: dict[str, Any] = {"iesd": fmt(index.day), "indexScore": index.total,
                             "window": [fmt(low), fmt(high)]}
    after = (f"in {WINDOW_FIRST_DAY}–{WINDOW_LAST_DAY} days after {fmt(index.day)} "
             f"({fmt(low)} to {fmt(high)}; PHQ-9 {index.total} then)")
    rates: dict[str, Outcome] = {}
    excluded = _excluded(data, intake_period(period)[0], high)
    if excluded is not None:
        pops = base | {DENOMINATOR_EXCLUSION}
        for rate in RATES:
            rates[rate] = Outcome(MEASURE_ID, data.patient, pops, stratum,
                                  unique([*evaluated, excluded[1]]), None,
                                  (f"excluded: {excluded[0]}",))
        return combine(MEASURE_ID, data.patient, rates, stratum, extra)

    in_window = [a for a in assessments(data) if low <= a.day <= high]
    if not in_window:
        reason = f"no PHQ-9 {after}"
        for rate in RATES:
            rates[rate] = Outcome(MEASURE_ID, data.patient, base, stratum, unique(evaluated),
                                  reason, ())
        return combine(MEASURE_ID, data.patient, rates, stratum, extra)

    last = in_window[-1]
    extra["last"] = {"date": fmt(last.day), "score": last.total}
    seen = unique([*evaluated, *(a.ref for a in in_window)])
    still = f"; a PHQ-9 by {fmt(high)} can still count" if last.day < high else ""
    most_recent = f"most recent PHQ-9 {after} was {last.total} on {fmt(last.day)}"
    rates[FOLLOW_UP] = Outcome(MEASURE_ID, data.patient, base | {NUMERATOR}, stratum, seen,
                               None, (f"PHQ-9 {last.total} on {fmt(last.day)}",))
    if last.total < REMISSION_BELOW:
        rates[REMISSION] = Outcome(MEASURE_ID, data.patient, base | {NUMERATOR}, stratum, seen,
                                   None, (f"remission: PHQ-9 {last.total}",))
    else:
        rates[REMISSION] = Outcome(
            MEASURE_ID, data.patient, base, stratum, seen,
            f"{most_recent}: not in remission (< {REMISSION_BELOW}){still}", ())
    if _responded(last.total, index.total):
        rates[RESPONSE] = Outcome(MEASURE_ID, data.patient, base | {NUMERATOR}, stratum, seen,
                                  None, (f"response: {index.total} to {last.total}",))
    else:
        rates[RESPONSE] = Outcome(
            MEASURE_ID, data.patient, base, stratum, seen,
            f"{most_recent}: less than a 50% drop from {index.total} (response needs "
            f"{int(index.total * RESPONSE_DROP)} or less){still}", ())
    return combine(MEASURE_ID, data.patient, rates, stratum, extra)
