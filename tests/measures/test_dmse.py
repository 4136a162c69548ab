"""HEDIS DMS-E (Utilization of the PHQ-9 to Monitor Depression Symptoms for Adolescents and
Adults), row by row.

Sources cited in the rows: "NCQA DMS" = NCQA measure 0245 ("a diagnosis of major depression or
dysthymia, who had an outpatient encounter with a PHQ-9 score present in their record in the
same assessment period as the encounter",
https://vdocument.in/utilization-of-the-phq-9-to-monitor-depression-symptoms-.html);
"CMS160" = the MNCM measure DMS is adapted from (https://ecqi.healthit.gov/sites/default/files/
ecqm/measures/CMS160v8.html: "a completed PHQ-9 during each applicable 4 month period in which
there was a qualifying depression encounter"; assessment periods January-April, May-August,
September-December, unverified for DMS-E: dmse.ASSESSMENT_PERIODS); "CMS159 CQL" = the
exclusions of the MNCM depression measures as cqframework/ecqm-content-qicore-2025
CMS159FHIRDepressionRemissionatTwelveMonths.cql reads them. Measurement period 2026.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.instruments.result import Score
from bhi_fhir.measures import dmse
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Period,
)
from tests.measures.builders import (
    code_in,
    condition,
    data,
    encounter,
    patient,
    score,
    scored,
    total_observation,
)

MP = Period.year(2026)
ADULT = patient("1980-05-05")
MDD = condition("d1", "F32.1", "2025-06-01")
DEN = frozenset({INITIAL_POPULATION, DENOMINATOR})
NUM = DEN | {NUMERATOR}
EXCL = DEN | {DENOMINATOR_EXCLUSION}


def _rates(resources: list[dict[str, Any]], scores: list[Score]) -> dict[str, Any] | None:
    outcome = dmse.evaluate(data(resources, scores), MP)
    if outcome is None:
        return None
    return {rate: o.populations for rate, o in outcome.rates.items()}


def _psychotic(onset: str) -> dict[str, Any]:
    system, code = code_in("Schizophrenia or Psychotic Disorder")
    return condition("s1", code, onset, system=system)


ROWS = [
    # --- assessment period edges (both sides of each boundary) ------------------------------
    pytest.param([ADULT, MDD, encounter("e1", "2025-12-31")], [], None,
                 id="visit-before-period-out (NCQA DMS)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-01-01")],
                 [score("phq9", "2026-01-01", 12)], {"period-1": NUM},
                 id="period-1-first-day (CMS160 4-month periods)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-04-30")],
                 [score("phq9", "2026-04-30", 12)], {"period-1": NUM},
                 id="period-1-last-day (CMS160 4-month periods)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-04-30")],
                 [score("phq9", "2026-05-01", 12)], {"period-1": DEN},
                 id="phq9-day-after-period-1-not-counted-for-it (NCQA DMS: same assessment "
                 "period)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-05-01")],
                 [score("phq9", "2026-04-30", 12)], {"period-2": DEN},
                 id="phq9-day-before-period-2-not-counted-for-it (NCQA DMS)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-05-01")],
                 [score("phq9", "2026-08-31", 12)], {"period-2": NUM},
                 id="period-2-first-and-last-day (CMS160 4-month periods)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-08-31")],
                 [score("phq9", "2026-09-01", 12)], {"period-2": DEN},
                 id="period-2-last-day-visit-phq9-in-period-3 (NCQA DMS)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-09-01")],
                 [score("phq9", "2026-12-31", 3)], {"period-3": NUM},
                 id="period-3-first-and-last-day (CMS160 4-month periods)"),
    pytest.param([ADULT, MDD, encounter("e1", "2027-01-01")], [], None,
                 id="visit-after-period-out (NCQA DMS)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01"), encounter("e2", "2026-10-01")],
                 [score("phq9", "2026-02-01", 12)], {"period-1": NUM, "period-3": DEN},
                 id="each-period-with-a-visit-is-a-rate (CMS160: each applicable period)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01")],
                 [score("phq9", "2026-03-01", 12, status="in-progress")], {"period-1": DEN},
                 id="draft-phq9-not-counted (FHIR R4 QuestionnaireResponse.status)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01")], [score("phq2", "2026-02-01", 4)],
                 {"period-1": DEN}, id="phq2-is-not-a-phq9 (NCQA DMS: PHQ-9 score)"),
    pytest.param([patient("2010-01-01"), MDD, encounter("e1", "2026-02-01")],
                 [score("phqa", "2026-02-01", 12)], {"period-1": NUM},
                 id="phq9m-counts (CMS159 CQL value set PHQ 9 and PHQ 9M Tools)"),
    # --- denominator: diagnosis and outpatient encounter ------------------------------------
    pytest.param([ADULT, encounter("e1", "2026-02-01")], [score("phq9", "2026-02-01", 12)],
                 None, id="no-depression-diagnosis-out (NCQA DMS)"),
    pytest.param([ADULT, condition("d1", "F34.1", "2025-01-01"), encounter("e1", "2026-02-01")],
                 [], {"period-1": DEN}, id="dysthymia-in (NCQA DMS: major depression or "
                 "dysthymia)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2026-02-02"), encounter("e1", "2026-02-01")],
                 [], None, id="diagnosis-after-the-visit-out (NCQA DMS: encounter with the "
                 "diagnosis)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2025-01-01", verification="provisional"),
                  encounter("e1", "2026-02-01")], [], None,
                 id="diagnosis-not-confirmed-out (CMS159 CQL isConfirmedActiveDiagnosis)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01", code="99441")], [],
                 {"period-1": DEN}, id="telephone-visit-in (dmse: eCQM Telephone Visits "
                 "stands in for HEDIS Telephone Visits)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01", status="planned")], [], None,
                 id="visit-not-finished-out (NCQA DMS: had an outpatient encounter)"),
    # --- age on January 1 -------------------------------------------------------------------
    pytest.param([patient("2014-01-02"), MDD, encounter("e1", "2026-02-01")], [], None,
                 id="age-11-out (NCQA DMS: 12 years of age and older)"),
    pytest.param([patient("2014-01-01"), MDD, encounter("e1", "2026-02-01")], [],
                 {"period-1": DEN}, id="age-12-in (NCQA DMS: 12 years of age and older)"),
    # --- exclusions ---------------------------------------------------------------------------
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01"), _psychotic("2026-12-31")], [],
                 {"period-1": EXCL},
                 id="psychotic-disorder-by-period-end-excluded (CMS159 CQL exclusions)"),
    pytest.param([ADULT, MDD, encounter("e1", "2026-02-01"), _psychotic("2027-01-01")], [],
                 {"period-1": DEN},
                 id="psychotic-disorder-after-period-not-excluded (CMS159 CQL exclusions)"),
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-12-31"), MDD,
                  encounter("e1", "2026-02-01")], [], {"period-1": EXCL},
                 id="died-in-period-excluded (HEDIS General Guideline 18)"),
]


@pytest.mark.parametrize(("resources", "scores", "expected"), ROWS)
def test_dmse(resources: list[dict[str, Any]], scores: list[Score],
              expected: dict[str, Any] | None) -> None:
    assert _rates(resources, scores) == expected


@pytest.mark.parametrize(("birth", "stratum"), [
    pytest.param("2008-01-02", "12-17", id="age-17 (dmse.STRATA)"),
    pytest.param("2008-01-01", "18-64", id="age-18 (dmse.STRATA)"),
    pytest.param("1961-01-02", "18-64", id="age-64 (dmse.STRATA)"),
    pytest.param("1961-01-01", "65+", id="age-65 (dmse.STRATA)"),
])
def test_strata_by_age_on_january_1(birth: str, stratum: str) -> None:
    outcome = dmse.evaluate(data([patient(birth), MDD, encounter("e1", "2026-02-01")]), MP)
    assert outcome is not None and outcome.stratum == stratum


def test_gap_reason_and_observation_phq9() -> None:
    """A PHQ-9 total Observation counts (Synthea 3.3 and US Core hold it so); a period without
    one says which days a PHQ-9 would count."""
    outcome = dmse.evaluate(scored([
        ADULT, MDD, encounter("e1", "2026-02-01"), encounter("e2", "2026-06-10"),
        total_observation("o1", "2026-03-01", 11)]), MP)
    assert outcome is not None
    assert outcome.rates["period-1"].has(NUMERATOR)
    assert outcome.rates["period-2"].reason == (
        "no PHQ-9 between 2026-05-01 and 2026-08-31 (depression visit on 2026-06-10): a PHQ-9 "
        "by 2026-08-31 counts, at a visit or by phone or portal")
    assert outcome.gap and outcome.reason is not None and outcome.reason.startswith("period-2:")
