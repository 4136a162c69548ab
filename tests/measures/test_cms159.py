"""CMS159v14 (Depression Remission at Twelve Months), row by row against the published CQL.

Source of every row unless it says otherwise: cqframework/ecqm-content-qicore-2025
``input/cql/CMS159FHIRDepressionRemissionatTwelveMonths.cql`` (cited as "CQL <definition>"),
https://ecqi.healthit.gov/ecqm/ec/2026/cms0159v14. Measurement period
2026, so the Denominator Identification Period is 2024-11-01 to 2025-10-31 and an index PHQ-9
on 2025-03-10 has the Measure Assessment Period 2026-01-09 to 2026-05-09.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bhi_fhir.measures import cms159
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Period,
    add_months,
)
from tests.measures.builders import code_in, condition, data, encounter, patient, score

MP = Period.year(2026)
ADULT = patient("1980-05-05")
MDD = condition("d1", "F32.1", "2025-01-01", category="encounter-diagnosis")
VISIT = encounter("e1", "2025-03-10")
INDEX = score("phq9", "2025-03-10", 15, rid="index")
NONE: frozenset[str] = frozenset()
DEN = frozenset({INITIAL_POPULATION, DENOMINATOR})
NUM = DEN | {NUMERATOR}
EXCL = DEN | {DENOMINATOR_EXCLUSION}


def _outcome(resources: list[dict[str, Any]], scores: list[Any]) -> Any:
    return cms159.evaluate(data(resources, scores), MP)


def _pops(resources: list[dict[str, Any]], scores: list[Any]) -> frozenset[str]:
    outcome = _outcome(resources, scores)
    return NONE if outcome is None else outcome.populations


def _hospice_encounter(start: str) -> dict[str, Any]:
    system, code = code_in("Hospice Encounter")
    return encounter("h1", start, code=code, system=system)


ROWS = [
    # --- Denominator Identification Period [MP start - 14 months, MP start - 2 months) --------
    pytest.param([ADULT, MDD, encounter("e1", "2024-10-31")], [score("phq9", "2024-10-31", 15)],
                 NONE, id="visit-ends-day-before-identification-period-out "
                 "(CQL Denominator Identification Period)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2024-01-01"), encounter("e1", "2024-11-01")],
                 [score("phq9", "2024-11-01", 15), score("phq9", "2025-11-01", 3)], NUM,
                 id="visit-ends-first-day-in (CQL Denominator Identification Period)"),
    pytest.param([ADULT, MDD, encounter("e1", "2025-10-31")],
                 [score("phq9", "2025-10-31", 15), score("phq9", "2026-10-31", 3)], NUM,
                 id="visit-ends-last-day-in (CQL Interval[..., start - 2 months) )"),
    pytest.param([ADULT, MDD, encounter("e1", "2025-11-01")], [score("phq9", "2025-11-01", 15)],
                 NONE, id="visit-ends-on-open-end-out (CQL Interval[..., start - 2 months) )"),
    # --- depression encounter ------------------------------------------------------------------
    pytest.param([ADULT, MDD, encounter("e1", "2025-03-10", status="planned")], [INDEX], NONE,
                 id="visit-not-finished-out (CQL Depression Encounter: status finished)"),
    pytest.param([ADULT, MDD, encounter("e1", "2025-03-10", code="99441")], [INDEX], NONE,
                 id="telephone-visit-out (CQL Contact or Office Visit value set)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2025-01-01", verification="provisional"),
                  VISIT], [INDEX], NONE,
                 id="diagnosis-not-confirmed-out (CQL isConfirmedActiveDiagnosis)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2024-01-01", clinical="resolved",
                                   abatement="2025-01-01"), VISIT], [INDEX], NONE,
                 id="diagnosis-resolved-out (CQL isConfirmedActiveDiagnosis: isActive)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2025-03-11"), VISIT], [INDEX], NONE,
                 id="diagnosis-after-visit-out (CQL period overlaps prevalenceInterval)"),
    pytest.param([ADULT, condition("d1", "F34.1", "2025-01-01"), VISIT],
                 [INDEX, score("phq9", "2026-03-10", 2)], NUM,
                 id="dysthymia-counts (CQL Dysthymia value set)"),
    pytest.param([ADULT, condition("d1", "F41.1", "2025-01-01"), VISIT], [INDEX], NONE,
                 id="anxiety-diagnosis-out (CQL Major Depression Including Remission, Dysthymia)"),
    # --- index assessment: PHQ-9 > 9 from 7 days before the visit to its end ------------------
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-10", 9)], NONE,
                 id="phq9-9-not-index (CQL Depression Assessments Greater Than 9)"),
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-10", 10)], DEN,
                 id="phq9-10-index (CQL Depression Assessments Greater Than 9)"),
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-03", 12)], DEN,
                 id="phq9-7-days-before-visit-index (CQL start of period - 7 days)"),
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-02", 12)], NONE,
                 id="phq9-8-days-before-visit-not-index (CQL start of period - 7 days)"),
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-11", 12)], NONE,
                 id="phq9-day-after-visit-not-index (CQL end of DepressionEncounter.period)"),
    pytest.param([ADULT, MDD, VISIT], [score("phqa", "2025-03-10", 12)], DEN,
                 id="phq9m-index (CQL PHQ 9 and PHQ 9M Tools: 89204-2)"),
    pytest.param([ADULT, MDD, VISIT], [score("gad7", "2025-03-10", 15)], NONE,
                 id="gad7-not-index (CQL PHQ 9 and PHQ 9M Tools)"),
    pytest.param([ADULT, MDD, VISIT], [score("phq9", "2025-03-10", 15, status="in-progress")],
                 NONE, id="not-final-not-index (CQL status in final, amended, corrected)"),
    # --- initial population: age at the index assessment ---------------------------------------
    pytest.param([patient("2013-03-11"), MDD, VISIT], [INDEX], NONE,
                 id="age-11-at-index-out (CQL AgeInYearsAt(index) >= 12)"),
    pytest.param([patient("2013-03-10"), MDD, VISIT], [INDEX], DEN,
                 id="age-12-at-index-in (CQL AgeInYearsAt(index) >= 12)"),
    # --- Measure Assessment Period: index + 12 months ± 60 days -------------------------------
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-01-08", 3)], DEN,
                 id="remission-61-days-early-out (CQL Measure Assessment Period - 60 days)"),
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-01-09", 3)], NUM,
                 id="remission-60-days-early-in (CQL Measure Assessment Period - 60 days)"),
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-05-09", 3)], NUM,
                 id="remission-60-days-late-in (CQL Measure Assessment Period + 60 days)"),
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-05-10", 3)], DEN,
                 id="remission-61-days-late-out (CQL Measure Assessment Period + 60 days)"),
    # --- numerator: the last PHQ-9 in the window < 5 ------------------------------------------
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-03-10", 4)], NUM,
                 id="last-4-remission (CQL Numerator value < 5)"),
    pytest.param([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-03-10", 5)], DEN,
                 id="last-5-not-remission (CQL Numerator value < 5)"),
    pytest.param([ADULT, MDD, VISIT],
                 [INDEX, score("phq9", "2026-02-01", 3), score("phq9", "2026-04-01", 7)], DEN,
                 id="remission-then-relapse-out (CQL Numerator: Last(...))"),
    pytest.param([ADULT, MDD, VISIT],
                 [INDEX, score("phq9", "2026-02-01", 7), score("phq9", "2026-04-01", 3)], NUM,
                 id="last-in-window-remission (CQL Numerator: Last(...))"),
    # --- exclusions, from the identification period's start to the window's end ---------------
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-05-09"), MDD, VISIT], [INDEX], EXCL,
                 id="died-on-window-end-excluded (CQL Patient Expired on or before end)"),
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-05-10"), MDD, VISIT], [INDEX], DEN,
                 id="died-after-window-not-excluded (CQL Patient Expired on or before end)"),
    pytest.param([ADULT, MDD, VISIT, _hospice_encounter("2026-05-09")], [INDEX], EXCL,
                 id="hospice-on-window-end-excluded (CQL Hospice Encounter overlaps)"),
    pytest.param([ADULT, MDD, VISIT, _hospice_encounter("2026-05-10")], [INDEX], DEN,
                 id="hospice-after-window-not-excluded (CQL Hospice Encounter overlaps)"),
    pytest.param([ADULT, MDD, VISIT, _hospice_encounter("2024-10-31")], [INDEX], DEN,
                 id="hospice-before-identification-not-excluded (CQL start of Identification)"),
    pytest.param([ADULT, MDD, VISIT, condition("b1", "F31.9", "2026-05-09")], [INDEX], EXCL,
                 id="bipolar-on-window-end-excluded (CQL Has Mental Health Disorder Diagnoses)"),
    pytest.param([ADULT, MDD, VISIT, condition("b1", "F31.9", "2026-05-10")], [INDEX], DEN,
                 id="bipolar-after-window-not-excluded (CQL on or before day of end)"),
    pytest.param([ADULT, MDD, VISIT, condition("b1", "F20.0", "2010-01-01")], [INDEX], EXCL,
                 id="schizophrenia-excluded (CQL Schizophrenia or Psychotic Disorder)"),
    pytest.param([ADULT, MDD, VISIT, condition("b1", "F60.3", "2010-01-01",
                                               verification="refuted")], [INDEX], DEN,
                 id="refuted-personality-disorder-not-excluded (CQL isConfirmedActiveDiagnosis)"),
]


@pytest.mark.parametrize(("resources", "scores", "expected"), ROWS)
def test_cms159_populations(resources: list[dict[str, Any]], scores: list[Any],
                            expected: frozenset[str]) -> None:
    assert _pops(resources, scores) == expected


@pytest.mark.parametrize(
    ("birth", "stratum"),
    [
        pytest.param("2013-03-10", "12-17", id="age-12-stratum-12-17 (eCQI CMS159v14 strata)"),
        pytest.param("2007-03-11", "12-17", id="age-17-stratum-12-17 (eCQI CMS159v14 strata)"),
        pytest.param("2007-03-10", "18+", id="age-18-stratum-18-plus (eCQI CMS159v14 strata)"),
    ],
)
def test_cms159_strata_by_age_at_index(birth: str, stratum: str) -> None:
    outcome = _outcome([patient(birth), MDD, VISIT], [INDEX])
    assert outcome is not None and outcome.stratum == stratum


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        pytest.param(date(2025, 3, 10), 12, date(2026, 3, 10), id="plain (CQL date + 12 months)"),
        pytest.param(date(2024, 2, 29), 12, date(2025, 2, 28),
                     id="leap-day-clamps (CQL date arithmetic: last day of the month)"),
        pytest.param(date(2026, 1, 1), -14, date(2024, 11, 1),
                     id="identification-start (CQL start of MP - 14 months)"),
    ],
)
def test_month_arithmetic(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_identification_period_2026() -> None:
    # CQL: Interval[start of MP - 14 months, start of MP - 2 months )
    assert cms159.identification_period(MP) == (date(2024, 11, 1), date(2025, 10, 31))


def test_no_phq9_in_window_reason_names_the_window() -> None:
    outcome = _outcome([ADULT, MDD, VISIT], [INDEX, score("phq9", "2025-06-10", 8)])
    assert outcome is not None and outcome.gap
    assert outcome.reason == ("no PHQ-9 between 2026-01-09 and 2026-05-09 (12 months ± 60 days "
                              "after the index PHQ-9 of 15 on 2025-03-10)")
    assert {"QuestionnaireResponse/index", "Encounter/e1", "Condition/d1"} <= set(
        outcome.evaluated)


def test_not_in_remission_reason_gives_score_and_remaining_time() -> None:
    outcome = _outcome([ADULT, MDD, VISIT], [INDEX, score("phq9", "2026-03-01", 9)])
    assert outcome is not None and outcome.reason is not None
    assert "was 9 on 2026-03-01" in outcome.reason
    assert "a PHQ-9 by 2026-05-09 can still count" in outcome.reason
