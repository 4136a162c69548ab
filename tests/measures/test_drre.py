"""HEDIS DRR-E (Depression Remission or Response for Adolescents and Adults), row by row.

Sources cited in the rows: "NCQA DRR-E" = https://ncqa.org/report-cards/health-plans/state-of-
health-care-quality-report/measures-list/depression-remission-or-response-for-adolescents-and-
adults-drr-e (12 and older, elevated PHQ-9, follow-up within 120-240 days); "Horizon DRR-E" =
Horizon BCBSNJ MY2023 tip sheet (numerators: a PHQ-9 in the follow-up period; the *most recent*
PHQ-9 < 5; the most recent at least 50% lower than the IESD's; by phone or portal too);
"Ursa DRR" = https://docs.ursahealth.com/v1/docs/ursa-quality-drr2-depression-screening-
remission-drr2 ("an elevated PHQ-9 score in the last 20 months": the intake period, unverified:
drre.INTAKE); "> 9" is unverified (drre.ELEVATED_ABOVE; CMS159v14's index threshold);
"CMS159 CQL" = cqframework/ecqm-content-qicore-2025 CMS159FHIRDepressionRemissionatTwelveMonths.cql
(the exclusions of the MNCM measure DRR-E is adapted from).
Measurement period 2026; the IESD is 2026-03-04 (PHQ-9 15) unless a row says otherwise, so the
follow-up period is 2026-07-02 (day 120) to 2026-10-30 (day 240).
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.instruments.result import Score
from bhi_fhir.measures import drre
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
MDD = condition("d1", "F32.1", "2025-01-01")
INDEX = score("phq9", "2026-03-04", 15, rid="index")
DEN = frozenset({INITIAL_POPULATION, DENOMINATOR})
NUM = DEN | {NUMERATOR}
EXCL = DEN | {DENOMINATOR_EXCLUSION}
ALL_NUM = {"follow-up": NUM, "remission": NUM, "response": NUM}
NO_FOLLOW_UP = {"follow-up": DEN, "remission": DEN, "response": DEN}
EXCLUDED = {"follow-up": EXCL, "remission": EXCL, "response": EXCL}


def _rates(resources: list[dict[str, Any]], scores: list[Score]) -> dict[str, Any] | None:
    outcome = drre.evaluate(data(resources, scores), MP)
    if outcome is None:
        return None
    return {rate: o.populations for rate, o in outcome.rates.items()}


def _later(day: str, total: int) -> Score:
    return score("phq9", day, total, rid=f"later-{day}")


def _bipolar(onset: str) -> dict[str, Any]:
    system, code = code_in("Bipolar Disorder")
    return condition("b1", code, onset, system=system)


ROWS = [
    # --- intake period (Ursa DRR; drre.INTAKE) ----------------------------------------------
    pytest.param([ADULT, MDD], [score("phq9", "2025-04-30", 15)], None,
                 id="elevated-day-before-intake-out (Ursa DRR: last 20 months)"),
    pytest.param([ADULT, MDD], [score("phq9", "2025-05-01", 15)], NO_FOLLOW_UP,
                 id="elevated-first-intake-day-in (Ursa DRR: last 20 months)"),
    pytest.param([ADULT, MDD], [score("phq9", "2026-04-30", 15)], NO_FOLLOW_UP,
                 id="elevated-last-intake-day-in (Ursa DRR less 240 days of follow-up)"),
    pytest.param([ADULT, MDD], [score("phq9", "2026-05-01", 15)], None,
                 id="elevated-after-intake-out (Ursa DRR less 240 days of follow-up)"),
    # --- elevated PHQ-9 (> 9) and the depression diagnosis ----------------------------------
    pytest.param([ADULT, MDD], [score("phq9", "2026-03-04", 9)], None,
                 id="phq9-9-not-elevated (drre.ELEVATED_ABOVE > 9, unverified)"),
    pytest.param([ADULT, MDD], [score("phq9", "2026-03-04", 10)], NO_FOLLOW_UP,
                 id="phq9-10-elevated (drre.ELEVATED_ABOVE > 9, unverified)"),
    pytest.param([ADULT], [INDEX], None,
                 id="no-depression-diagnosis-out (NCQA DRR-E: diagnosis of depression)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2026-03-05")], [INDEX], None,
                 id="diagnosis-after-the-phq9-out (NCQA DRR-E: depression at the IESD)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2025-01-01", clinical="resolved",
                                   abatement="2026-06-01")], [INDEX], NO_FOLLOW_UP,
                 id="diagnosis-resolved-since-still-counts (NCQA DRR-E: at the IESD)"),
    pytest.param([ADULT, condition("d1", "F32.1", "2025-01-01", verification="refuted")],
                 [INDEX], None, id="diagnosis-refuted-out (FHIR R4 Condition verification)"),
    pytest.param([ADULT, MDD], [score("phq9", "2025-06-01", 12, rid="first"), INDEX,
                                _later("2026-07-02", 3)], NO_FOLLOW_UP,
                 id="iesd-is-the-first-elevated-score (NCQA DRR-E: index episode start)"),
    # --- follow-up period: day 120 to day 240 after the IESD --------------------------------
    pytest.param([ADULT, MDD], [INDEX, _later("2026-07-01", 3)], NO_FOLLOW_UP,
                 id="phq9-day-119-out (NCQA DRR-E: 120-240 days)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-07-02", 3)], ALL_NUM,
                 id="phq9-day-120-in (NCQA DRR-E: 120-240 days)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-10-30", 3)], ALL_NUM,
                 id="phq9-day-240-in (NCQA DRR-E: 120-240 days)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-10-31", 3)], NO_FOLLOW_UP,
                 id="phq9-day-241-out (NCQA DRR-E: 120-240 days)"),
    # --- remission (< 5) and response (>= 50% lower), most recent in the period -------------
    pytest.param([ADULT, MDD], [INDEX, _later("2026-08-01", 4)], ALL_NUM,
                 id="last-4-remission (Horizon DRR-E: most recent < 5)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-08-01", 5)],
                 {"follow-up": NUM, "remission": DEN, "response": NUM},
                 id="last-5-not-remission-but-response (Horizon DRR-E: < 5; 5 <= 7.5)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-08-01", 7)],
                 {"follow-up": NUM, "remission": DEN, "response": NUM},
                 id="15-to-7-response (Horizon DRR-E: at least 50% lower)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-08-01", 8)],
                 {"follow-up": NUM, "remission": DEN, "response": DEN},
                 id="15-to-8-no-response (Horizon DRR-E: at least 50% lower)"),
    pytest.param([ADULT, MDD], [score("phq9", "2026-03-04", 16), _later("2026-08-01", 8)],
                 {"follow-up": NUM, "remission": DEN, "response": NUM},
                 id="16-to-8-exactly-half-response (Horizon DRR-E: at least 50% lower)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-07-10", 3), _later("2026-09-01", 9)],
                 {"follow-up": NUM, "remission": DEN, "response": DEN},
                 id="most-recent-decides-not-the-best (Horizon DRR-E: most recent)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-07-10", 9), _later("2026-09-01", 3)],
                 ALL_NUM, id="most-recent-remission-after-a-high-one (Horizon DRR-E)"),
    pytest.param([ADULT, MDD], [INDEX, _later("2026-09-01", 3), _later("2026-11-01", 14)],
                 ALL_NUM, id="score-after-the-period-ignored (NCQA DRR-E: 120-240 days)"),
    pytest.param([ADULT, MDD], [INDEX, score("phq9", "2026-08-01", 3, status="in-progress")],
                 NO_FOLLOW_UP, id="draft-phq9-not-counted (FHIR R4 QuestionnaireResponse."
                 "status)"),
    # --- age at the IESD -----------------------------------------------------------------------
    pytest.param([patient("2014-03-05"), MDD], [INDEX], None,
                 id="age-11-at-iesd-out (NCQA DRR-E: 12 years of age and older)"),
    pytest.param([patient("2014-03-04"), MDD], [score("phqa", "2026-03-04", 15)],
                 NO_FOLLOW_UP, id="age-12-at-iesd-in-phq9m (NCQA DRR-E; CMS159 CQL PHQ 9 "
                 "and PHQ 9M Tools)"),
    # --- exclusions, by the end of the follow-up period ---------------------------------------
    pytest.param([ADULT, MDD, _bipolar("2026-10-30")], [INDEX], EXCLUDED,
                 id="bipolar-by-day-240-excluded (CMS159 CQL exclusions)"),
    pytest.param([ADULT, MDD, _bipolar("2026-10-31")], [INDEX], NO_FOLLOW_UP,
                 id="bipolar-after-day-240-not-excluded (CMS159 CQL exclusions)"),
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-10-30"), MDD], [INDEX],
                 EXCLUDED, id="died-by-day-240-excluded (CMS159 CQL; HEDIS GG18)"),
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-10-31"), MDD], [INDEX],
                 NO_FOLLOW_UP, id="died-after-day-240-not-excluded (CMS159 CQL; HEDIS GG18)"),
    pytest.param([ADULT, MDD, encounter("h1", "2026-09-01", code=code_in(
        "Hospice Encounter")[1], system=code_in("Hospice Encounter")[0])], [INDEX], EXCLUDED,
        id="hospice-in-follow-up-period-excluded (CMS159 CQL; HEDIS GG17)"),
]


@pytest.mark.parametrize(("resources", "scores", "expected"), ROWS)
def test_drre(resources: list[dict[str, Any]], scores: list[Score],
              expected: dict[str, Any] | None) -> None:
    assert _rates(resources, scores) == expected


@pytest.mark.parametrize(("birth", "stratum"), [
    pytest.param("2008-03-05", "12-17", id="age-17-at-iesd (drre.STRATA)"),
    pytest.param("2008-03-04", "18-64", id="age-18-at-iesd (drre.STRATA)"),
    pytest.param("1961-03-05", "18-64", id="age-64-at-iesd (drre.STRATA)"),
    pytest.param("1961-03-04", "65+", id="age-65-at-iesd (drre.STRATA)"),
])
def test_strata_by_age_at_the_iesd(birth: str, stratum: str) -> None:
    outcome = drre.evaluate(data([patient(birth), MDD], [INDEX]), MP)
    assert outcome is not None and outcome.stratum == stratum


def test_reasons_say_what_to_do() -> None:
    none = drre.evaluate(data([ADULT, MDD], [INDEX]), MP)
    assert none is not None
    assert none.rates["follow-up"].reason == (
        "no PHQ-9 in 120–240 days after 2026-03-04 (2026-07-02 to 2026-10-30; PHQ-9 15 then)")
    high = drre.evaluate(data([ADULT, MDD], [INDEX, _later("2026-08-01", 9)]), MP)
    assert high is not None
    assert high.rates["remission"].reason == (
        "most recent PHQ-9 in 120–240 days after 2026-03-04 (2026-07-02 to 2026-10-30; PHQ-9 "
        "15 then) was 9 on 2026-08-01: not in remission (< 5); a PHQ-9 by 2026-10-30 can "
        "still count")
    assert high.rates["response"].reason is not None
    assert "less than a 50% drop from 15 (response needs 7 or less)" in (
        high.rates["response"].reason)


def test_phone_or_portal_phq9_observation_counts() -> None:
    """Horizon DRR-E: the PHQ-9 may be taken by phone or portal, with no visit; an Observation
    total counts as a QuestionnaireResponse does (US Core Observation Screening Assessment)."""
    outcome = drre.evaluate(scored([ADULT, MDD, total_observation("o1", "2026-03-04", 15),
                                    total_observation("o2", "2026-08-01", 4)]), MP)
    assert outcome is not None and outcome.has(NUMERATOR)
    assert outcome.extra["last"] == {"date": "2026-08-01", "score": 4}
