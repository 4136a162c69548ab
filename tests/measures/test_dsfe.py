"""HEDIS DSF-E (Depression Screening and Follow-Up for Adolescents and Adults), row by row.

Sources cited in the rows: "NCQA DSF" = https://www.ncqa.org/hedis/measures/depression-screening-
and-follow-up-for-adolescents-and-adults/ ; "BCBSND DSF-E" = the BCBSND HEDIS tip sheet
(https://www.bcbsnd.com/providers/programs/bluealliance-and-bluealliance-care-plus/hedis-tip-
sheets/hedis-tip-sheet-search/dsf-e: ages as of January 1, screening January 1 - December 1,
follow-up within 30 days, strata 12-17/18-64/65+, PHQ-2 then same-day negative PHQ-9);
"HEDIS thresholds" = the HEDIS MY2025 positive thresholds as an open-source MY2025
implementation codes them; "HEDIS GG17/GG18" = HEDIS General Guidelines 17 (members in hospice) and
18 (deceased members), HEDIS MY2020 Volume 2 summary table; "HEDIS 2020 DSF" = the DSF summary
of changes (bipolar exclusion "during the year prior to the Measurement Period").
Measurement period 2026; the first positive screen is 2026-03-04 unless a row says otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.codes import BHI_ACTIVITY, HCPCS, ICD10CM
from bhi_fhir.instruments.result import Score
from bhi_fhir.measures import dsfe
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Period,
)
from tests.measures.builders import (
    PATIENT,
    code_in,
    condition,
    data,
    dispense,
    encounter,
    medication_order,
    patient,
    score,
    scored,
    total_observation,
)

MP = Period.year(2026)
ADULT = patient("1980-05-05")
VISIT = encounter("e1", "2026-03-04")
POSITIVE = score("phq9", "2026-03-04", 15, rid="index")
NEGATIVE = score("phq9", "2026-03-04", 4, rid="neg")
DEN = frozenset({INITIAL_POPULATION, DENOMINATOR})
NUM = DEN | {NUMERATOR}
EXCL = DEN | {DENOMINATOR_EXCLUSION}
NOT_IN = None


def _rates(resources: list[dict[str, Any]], scores: list[Score]) -> dict[str, Any] | None:
    outcome = dsfe.evaluate(data(resources, scores), MP)
    if outcome is None:
        return None
    return {rate: o.populations for rate, o in outcome.rates.items()}


def _contact(rid: str, day: str) -> dict[str, Any]:
    """A care manager's contact as bhi-fhir records it."""
    return encounter(rid, day, code="care-management-contact", system=BHI_ACTIVITY)


def _bipolar(onset: str, **extra: Any) -> dict[str, Any]:
    system, code = code_in("Bipolar Disorder")
    return condition("b1", code, onset, system=system, **extra)


def _encounter_in(value_set: str, rid: str, day: str) -> dict[str, Any]:
    system, code = code_in(value_set)
    return encounter(rid, day, code=code, system=system)


def _incomplete(day: str, low: int, high: int) -> Score:
    return Score(instrument="phq9", total=None, severity=None, positive=None, complete=False,
                 response_ref=f"QuestionnaireResponse/part-{day}", subject_ref=PATIENT,
                 authored=day, bounds=(low, high))


def _born(day: str) -> dict[str, Any]:
    return patient(day)


AGE_ROWS = [
    pytest.param("2014-01-02", None, id="age-11-on-jan-1-out (NCQA DSF: 12 years and older; "
                 "BCBSND DSF-E: as of January 1)"),
    pytest.param("2014-01-01", "12-17", id="age-12-on-jan-1-in-12-17 (BCBSND DSF-E strata)"),
    pytest.param("2008-01-02", "12-17", id="age-17-in-12-17 (BCBSND DSF-E strata)"),
    pytest.param("2008-01-01", "18-64", id="age-18-in-18-64 (BCBSND DSF-E strata)"),
    pytest.param("1961-01-02", "18-64", id="age-64-in-18-64 (BCBSND DSF-E strata)"),
    pytest.param("1961-01-01", "65+", id="age-65-in-65plus (BCBSND DSF-E strata)"),
]


@pytest.mark.parametrize(("birth", "stratum"), AGE_ROWS)
def test_age_and_stratum_on_january_1(birth: str, stratum: str | None) -> None:
    outcome = dsfe.evaluate(data([_born(birth), VISIT], [NEGATIVE]), MP)
    assert (outcome.stratum if outcome else None) == stratum


ROWS = [
    # --- who is measured: seen during the period (the practice's stand-in for enrolment) ----
    pytest.param([ADULT, encounter("e1", "2025-12-31")], [NEGATIVE], NOT_IN,
                 id="visit-day-before-period-out (dsfe.ATTRIBUTION)"),
    pytest.param([ADULT, encounter("e1", "2026-01-01")], [NEGATIVE],
                 {"screening": NUM}, id="visit-first-day-in (dsfe.ATTRIBUTION)"),
    pytest.param([ADULT, encounter("e1", "2026-12-31")], [NEGATIVE],
                 {"screening": NUM}, id="visit-last-day-in (dsfe.ATTRIBUTION)"),
    pytest.param([ADULT, encounter("e1", "2026-03-04", status="cancelled")], [NEGATIVE],
                 NOT_IN, id="visit-cancelled-out (dsfe.ATTRIBUTION: finished)"),
    # --- rate 1: screened January 1 - December 1 ------------------------------------------
    pytest.param([ADULT, VISIT], [], {"screening": DEN}, id="no-screen-gap (NCQA DSF rate 1)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2025-12-31", 4)], {"screening": DEN},
                 id="screen-day-before-period-out (BCBSND DSF-E: January 1 - December 1)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-01-01", 4)], {"screening": NUM},
                 id="screen-jan-1-in (BCBSND DSF-E: January 1 - December 1)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-12-01", 4)], {"screening": NUM},
                 id="screen-dec-1-in (BCBSND DSF-E: January 1 - December 1)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-12-02", 4)], {"screening": DEN},
                 id="screen-dec-2-out (BCBSND DSF-E: January 1 - December 1)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-04", 4, status="in-progress")],
                 {"screening": DEN}, id="draft-response-not-a-screen (FHIR R4 "
                 "QuestionnaireResponse.status: in-progress is not final)"),
    pytest.param([_born("2008-01-02"), VISIT], [score("phqa", "2026-03-04", 4)],
                 {"screening": NUM}, id="phq-a-at-17-counts (BCBSND DSF-E: age-appropriate "
                 "instrument; NIMH ASQ: PHQ-9 modified for teens)"),
    pytest.param([_born("2008-01-01"), VISIT], [score("phqa", "2026-03-04", 4)],
                 {"screening": DEN}, id="phq-a-at-18-not-age-appropriate (BCBSND DSF-E)"),
    # --- positive thresholds (both sides) ---------------------------------------------------
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-04", 9)], {"screening": NUM},
                 id="phq9-9-negative (HEDIS thresholds: PHQ-9 >= 10)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-04", 10)],
                 {"screening": NUM, "follow-up": DEN},
                 id="phq9-10-positive (HEDIS thresholds: PHQ-9 >= 10)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 2, positive=True)],
                 {"screening": NUM}, id="phq2-2-negative-whatever-the-practice-cut "
                 "(HEDIS thresholds: PHQ-2 >= 3)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 3)],
                 {"screening": NUM, "follow-up": DEN},
                 id="phq2-3-positive (HEDIS thresholds: PHQ-2 >= 3)"),
    pytest.param([ADULT, VISIT], [score("epds", "2026-03-04", 9)], {"screening": NUM},
                 id="epds-9-negative (HEDIS thresholds: EPDS >= 10)"),
    pytest.param([ADULT, VISIT], [score("epds", "2026-03-04", 10)],
                 {"screening": NUM, "follow-up": DEN},
                 id="epds-10-positive (HEDIS thresholds: EPDS >= 10)"),
    pytest.param([_born("2010-01-01"), VISIT], [score("phqa", "2026-03-04", 9)],
                 {"screening": NUM}, id="phq9m-9-negative (HEDIS thresholds: PHQ-9M >= 10)"),
    pytest.param([_born("2010-01-01"), VISIT], [score("phqa", "2026-03-04", 10)],
                 {"screening": NUM, "follow-up": DEN},
                 id="phq9m-10-positive (HEDIS thresholds: PHQ-9M >= 10)"),
    pytest.param([ADULT, VISIT], [_incomplete("2026-03-04", 10, 19)],
                 {"screening": NUM, "follow-up": DEN},
                 id="incomplete-reaching-10-positive (LOINC LL358-3: each missing item adds 0-3)"),
    pytest.param([ADULT, VISIT], [_incomplete("2026-03-04", 4, 9)], {"screening": NUM},
                 id="incomplete-below-10-at-most-negative (LOINC LL358-3: missing items add 0-3)"),
    pytest.param([ADULT, VISIT], [_incomplete("2026-03-04", 8, 12)], {"screening": DEN},
                 id="incomplete-undecided-no-result (BCBSND DSF-E: a result is required)"),
    # --- rate 2: follow-up from the first positive screen's day to day 30 -------------------
    pytest.param([ADULT, VISIT, _contact("c1", "2026-03-03")], [POSITIVE],
                 {"screening": NUM, "follow-up": DEN},
                 id="follow-up-day-before-screen-out (NCQA DSF: after a positive screen)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-03-04")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM}, id="follow-up-day-0-in (NCQA DSF)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-04-02")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="follow-up-day-29-in (BCBSND DSF-E: within 30 days)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-04-03")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="follow-up-day-30-in (BCBSND DSF-E: within 30 days)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-04-04")], [POSITIVE],
                 {"screening": NUM, "follow-up": DEN},
                 id="follow-up-day-31-out (BCBSND DSF-E: within 30 days)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-04-12")],
                 [POSITIVE, score("phq9", "2026-04-10", 16)],
                 {"screening": NUM, "follow-up": DEN},
                 id="window-from-the-first-positive-screen (BCBSND DSF-E: first positive)"),
    pytest.param([ADULT, VISIT, _contact("c1", "2026-12-31")],
                 [score("phq9", "2026-12-01", 15)], {"screening": NUM, "follow-up": NUM},
                 id="screen-dec-1-follow-up-dec-31 (BCBSND DSF-E: Jan 1 - Dec 1, 30 days)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-12-02", 15)], {"screening": DEN},
                 id="positive-dec-2-no-follow-up-rate (BCBSND DSF-E: Jan 1 - Dec 1)"),
    # --- follow-up kinds (NCQA DSF; the HEDIS value sets' stand-ins in dsfe.py) -------------
    pytest.param([ADULT, VISIT, encounter("e2", "2026-03-20", reasonCode=[{"coding": [{
        "system": ICD10CM, "code": "F32.1"}]}])], [POSITIVE],
        {"screening": NUM, "follow-up": NUM},
        id="office-visit-with-depression-diagnosis (NCQA DSF: follow-up visit)"),
    pytest.param([ADULT, VISIT, encounter("e2", "2026-03-20")], [POSITIVE],
                 {"screening": NUM, "follow-up": DEN},
                 id="office-visit-without-diagnosis-not-follow-up (NCQA DSF: with a depression "
                 "or behavioral-health diagnosis)"),
    pytest.param([ADULT, VISIT, encounter("e2", "2026-03-20"),
                  {**condition("d9", "F41.1", "2026-03-20", category="encounter-diagnosis"),
                   "encounter": {"reference": "Encounter/e2"}}], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="office-visit-with-anxiety-diagnosis-recorded-for-it (NCQA DSF: other "
                 "behavioral-health condition)"),
    pytest.param([ADULT, VISIT, encounter("e2", "2026-03-20", code="90834")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="psychotherapy-visit (NCQA DSF: behavioral-health encounter)"),
    pytest.param([ADULT, VISIT, encounter("e2", "2026-03-20", code="99493")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="cocm-month (NCQA DSF: depression case management; CPT 99493)"),
    pytest.param([ADULT, VISIT, {"resourceType": "Procedure", "id": "pr1", "status": "completed",
                                 "code": {"coding": [{"system": HCPCS, "code": "G2214"}]},
                                 "subject": {"reference": PATIENT},
                                 "performedDateTime": "2026-03-20"}], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="cocm-procedure-g2214 (NCQA DSF: depression case management)"),
    pytest.param([ADULT, VISIT, dispense("md1", "2026-03-20")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="antidepressant-dispensed (NCQA DSF: dispensed antidepressant)"),
    pytest.param([ADULT, VISIT, dispense("md1", "2026-03-20", status="cancelled")], [POSITIVE],
                 {"screening": NUM, "follow-up": DEN},
                 id="dispense-cancelled-not-follow-up (FHIR R4 MedicationDispense.status)"),
    pytest.param([ADULT, VISIT, medication_order("mr1", "2026-03-20")], [POSITIVE],
                 {"screening": NUM, "follow-up": NUM},
                 id="antidepressant-ordered (dsfe.ORDERS_COUNT_AS_DISPENSED)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 4),
                                  score("phq9", "2026-03-04", 6)],
                 {"screening": NUM, "follow-up": NUM},
                 id="positive-phq2-negative-phq9-same-day (BCBSND DSF-E)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 4),
                                  score("phq9", "2026-03-05", 6)],
                 {"screening": NUM, "follow-up": DEN},
                 id="negative-phq9-next-day-not-follow-up (BCBSND DSF-E: same day)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 4),
                                  score("phq9", "2026-03-04", 12)],
                 {"screening": NUM, "follow-up": DEN},
                 id="positive-phq9-same-day-not-follow-up (BCBSND DSF-E: a negative finding)"),
    pytest.param([ADULT, VISIT], [POSITIVE, score("phq9", "2026-03-04", 3, rid="later")],
                 {"screening": NUM, "follow-up": DEN},
                 id="negative-after-positive-full-length-not-follow-up (BCBSND DSF-E: after "
                 "a positive brief screen)"),
    # --- exclusions --------------------------------------------------------------------------
    pytest.param([patient("1980-05-05", deceasedDateTime="2026-06-01"), VISIT], [POSITIVE],
                 {"screening": EXCL, "follow-up": EXCL},
                 id="died-during-period-excluded (HEDIS GG18)"),
    pytest.param([patient("1980-05-05", deceasedDateTime="2027-01-01"), VISIT], [],
                 {"screening": DEN}, id="died-after-period-not-excluded (HEDIS GG18)"),
    pytest.param([ADULT, VISIT, encounter("h1", "2026-05-01", code=code_in(
        "Hospice Encounter")[1], system=code_in("Hospice Encounter")[0])], [],
        {"screening": EXCL}, id="hospice-during-period-excluded (HEDIS GG17)"),
    pytest.param([ADULT, VISIT, _encounter_in("Palliative Care Encounter", "p1", "2026-04-01")],
                 [], {"screening": DEN}, id="palliative-care-alone-not-excluded (HEDIS GG17: "
                 "hospice)"),
    pytest.param([ADULT, VISIT, _encounter_in("Palliative Care Encounter", "p1", "2026-04-01"),
                  _encounter_in("Hospice Encounter", "h1", "2026-05-01")], [],
                 {"screening": EXCL}, id="hospice-after-palliative-care-excluded (HEDIS GG17)"),
    pytest.param([ADULT, VISIT, _bipolar("2025-06-01")], [], {"screening": EXCL},
                 id="bipolar-in-prior-year-excluded (HEDIS 2020 DSF)"),
    pytest.param([ADULT, VISIT, _bipolar("2026-01-01")], [], {"screening": DEN},
                 id="bipolar-from-period-start-not-excluded (HEDIS 2020 DSF: year prior)"),
    pytest.param([ADULT, VISIT, _bipolar("2020-01-01", clinical="resolved",
                                         abatement="2024-12-31")], [], {"screening": DEN},
                 id="bipolar-ended-before-prior-year-not-excluded (HEDIS 2020 DSF)"),
    pytest.param([ADULT, VISIT, _bipolar("2020-01-01", clinical="resolved",
                                         abatement="2025-01-01")], [], {"screening": EXCL},
                 id="bipolar-ending-on-prior-year-first-day-excluded (HEDIS 2020 DSF)"),
]


@pytest.mark.parametrize(("resources", "scores", "expected"), ROWS)
def test_dsfe(resources: list[dict[str, Any]], scores: list[Score],
              expected: dict[str, Any] | None) -> None:
    assert _rates(resources, scores) == expected


def test_screening_observation_counts_as_a_screen() -> None:
    """A PHQ-9 total held as a screening Observation (as EHRs and Synthea 3.3 hold it; US Core
    Observation Screening Assessment) is a screen like a QuestionnaireResponse."""
    outcome = dsfe.evaluate(scored([ADULT, VISIT, total_observation("o1", "2026-03-04", 12),
                                    _contact("c1", "2026-03-05")]), MP)
    assert outcome is not None
    assert outcome.rates["screening"].has(NUMERATOR)
    assert outcome.rates["follow-up"].has(NUMERATOR)
    assert "Observation/o1" in outcome.evaluated


def test_reasons_say_what_to_do() -> None:
    none = dsfe.evaluate(data([ADULT, VISIT], []), MP)
    assert none is not None and none.rates["screening"].reason == (
        "no depression screen (PHQ-9, PHQ-2 or EPDS) between 2026-01-01 and 2026-12-01: "
        "screen at the next visit, or by phone or portal")
    brief = dsfe.evaluate(data([ADULT, VISIT], [score("phq2", "2026-03-04", 4)]), MP)
    assert brief is not None
    assert brief.rates["follow-up"].reason == (
        "positive PHQ-2 4 on 2026-03-04: no follow-up (a visit with a depression or "
        "behavioral-health diagnosis, care management, a behavioral-health visit or an "
        "antidepressant, or a negative PHQ-9 the same day) by 2026-04-03")
    # the patient-level outcome names the rate it missed and is not in the numerator
    assert brief.reason is not None and brief.reason.startswith("follow-up: positive PHQ-2")
    assert not brief.has(NUMERATOR) and brief.gap

