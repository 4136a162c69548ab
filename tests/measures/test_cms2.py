"""CMS2 (Screening for Depression and Follow-Up Plan), row by row against the published CQL.

Source of every row unless it says otherwise: cqframework/ecqm-content-qicore-2025
``input/cql/PCSDepressionScreenAndFollowUpFHIR.cql`` (cited below as "CQL <definition>"), and
the ONC Jira thread CQM-4639 where a row says so. Measurement period 2026.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.codes import SNOMED
from bhi_fhir.measures import cms2
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Period,
)
from tests.measures.builders import (
    condition,
    data,
    declined_observation,
    encounter,
    medication_order,
    patient,
    procedure,
    referral,
    score,
    screen_observation,
)

MP = Period.year(2026)
ADULT = patient("1980-05-05")
VISIT = encounter("e1", "2026-03-04")
NONE: frozenset[str] = frozenset()
DEN = frozenset({INITIAL_POPULATION, DENOMINATOR})
NUM = DEN | {NUMERATOR}
EXCL = DEN | {DENOMINATOR_EXCLUSION}
EXC = DEN | {DENOMINATOR_EXCEPTION}


def _pops(resources: list[dict[str, Any]], scores: list[Any] = ()) -> frozenset[str]:  # type: ignore[assignment]
    outcome = cms2.evaluate(data(resources, scores), MP)
    return NONE if outcome is None else outcome.populations


ROWS = [
    # --- initial population: age at the start of the period ---------------------------------
    pytest.param([patient("2014-01-02"), VISIT], [score("phq9", "2026-03-04", 3)], NONE,
                 id="age-11-on-period-start-out (CQL Patient Age 12 Years or Older at Start)"),
    pytest.param([patient("2014-01-01"), VISIT], [score("phq9", "2026-03-04", 3)], NUM,
                 id="age-12-on-period-start-in (CQL Patient Age 12 Years or Older at Start)"),
    # --- qualifying encounter: finished, in a value set, within the period by day -------------
    pytest.param([ADULT, encounter("e1", "2026-03-04", status="in-progress")],
                 [score("phq9", "2026-03-04", 3)], NONE,
                 id="encounter-not-finished-out (CQL Qualifying Encounter: status finished)"),
    pytest.param([ADULT, encounter("e1", "2026-03-04", code="99499")],
                 [score("phq9", "2026-03-04", 3)], NONE,
                 id="type-outside-value-sets-out (CQL Encounter to Screen for Depression)"),
    pytest.param([ADULT, encounter("e1", "2026-03-04", code="99441")],
                 [score("phq9", "2026-03-04", 3)], NUM,
                 id="telephone-visit-qualifies (CQL Telephone Visits value set)"),
    pytest.param([ADULT, encounter("e1", "2025-12-31")], [score("phq9", "2025-12-31", 3)], NONE,
                 id="visit-day-before-period-out (CQL period during day of Measurement Period)"),
    pytest.param([ADULT, encounter("e1", "2026-01-01")], [score("phq9", "2026-01-01", 3)], NUM,
                 id="visit-first-day-of-period-in (CQL period during day of Measurement Period)"),
    pytest.param([ADULT, encounter("e1", "2026-12-31")], [score("phq9", "2026-12-31", 3)], NUM,
                 id="visit-last-day-of-period-in (CQL period during day of Measurement Period)"),
    pytest.param([ADULT, encounter("e1", "2025-12-31", "2026-01-01")],
                 [score("phq9", "2026-01-01", 3)], NONE,
                 id="visit-starting-before-period-out (CQL period during day of MP)"),
    # --- screen window: 14 days or less on or before the visit's start ------------------------
    pytest.param([ADULT, VISIT], [score("phq9", "2026-02-18", 3)], NUM,
                 id="negative-14-days-before-in (CQL 14 days or less on or before)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-02-17", 3)], DEN,
                 id="negative-15-days-before-out (CQL 14 days or less on or before)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-04", 3)], NUM,
                 id="negative-on-visit-day-in (CQL on or before day of start)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-05", 3)], DEN,
                 id="negative-day-after-visit-out (CQL on or before day of start)"),
    pytest.param([ADULT, VISIT], [score("phq2", "2026-03-04", 1)], NUM,
                 id="negative-phq2-counts (ONC CQM-4639: CMS2 leaves positivity to the tool)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-03-04", 3, status="in-progress")], DEN,
                 id="not-final-screen-out (CQL status = final)"),
    # --- follow-up of a positive screen: during the visit or ≤ 2 days after its end ------------
    pytest.param([ADULT, VISIT, medication_order("m1", "2026-03-06")],
                 [score("phq9", "2026-03-04", 14)], NUM,
                 id="order-2-days-after-visit-in (CQL authoredOn 2 days or less on or after end)"),
    pytest.param([ADULT, VISIT, medication_order("m1", "2026-03-07")],
                 [score("phq9", "2026-03-04", 14)], DEN,
                 id="order-3-days-after-visit-out (CQL authoredOn 2 days or less on or after end)"),
    pytest.param([ADULT, VISIT, medication_order("m1", "2026-03-03")],
                 [score("phq9", "2026-03-03", 14)], DEN,
                 id="order-day-before-visit-out (CQL authoredOn on or after day of end)"),
    pytest.param([ADULT, VISIT, medication_order("m1", "2026-03-04", intent="plan")],
                 [score("phq9", "2026-03-04", 14)], DEN,
                 id="order-intent-plan-out (CQL intent = order)"),
    pytest.param([ADULT, VISIT, referral("r1", "2026-03-04")],
                 [score("phq9", "2026-03-04", 14)], NUM,
                 id="referral-on-visit-in (CQL Referral for Adult Depression)"),
    pytest.param([ADULT, VISIT, referral("r1", "2026-03-04", status="draft")],
                 [score("phq9", "2026-03-04", 14)], DEN,
                 id="referral-draft-out (CQL status in active, completed)"),
    pytest.param([ADULT, VISIT, procedure("f1", "2026-03-04")],
                 [score("phq9", "2026-03-04", 14)], NUM,
                 id="follow-up-performed-during-visit-in (CQL performed during period)"),
    pytest.param([ADULT, VISIT, procedure("f1", "2026-03-05")],
                 [score("phq9", "2026-03-04", 14)], DEN,
                 id="follow-up-performed-after-visit-out (CQL performed during period)"),
    pytest.param([ADULT, encounter("e1", "2026-12-31"), medication_order("m1", "2027-01-01")],
                 [score("phq9", "2026-12-31", 14)], DEN,
                 id="follow-up-after-period-out (CQL Coalesce(...) during day of MP)"),
    # --- the most recent screen decides -------------------------------------------------------
    pytest.param([ADULT, VISIT], [score("phq9", "2026-02-20", 3), score("phq9", "2026-03-01", 14)],
                 DEN, id="negative-then-positive-unfollowed-out (CQL Most Recent ... Screening)"),
    pytest.param([ADULT, VISIT], [score("phq9", "2026-02-20", 14), score("phq9", "2026-03-01", 3)],
                 NUM, id="positive-then-negative-in (CQL Most Recent ... Screening)"),
    # --- age-appropriate tools -----------------------------------------------------------------
    pytest.param([patient("2011-06-01"), VISIT], [score("epds", "2026-03-04", 2, positive=False)],
                 DEN, id="age-14-adult-only-tool-out (CQL Patient Age 12 to 16: adolescent)"),
    pytest.param([patient("2011-06-01"), VISIT], [score("phqa", "2026-03-04", 3)], NUM,
                 id="age-14-phq-a-in (CQL Patient Age 12 to 16: adolescent; PACIO PHQ-9M 89204-2)"),
    pytest.param([patient("2008-06-01"), VISIT, screen_observation("o1", "2026-03-04", False)],
                 [], NUM, id="age-17-adult-screen-in (CQL Patient Age 17: either screen)"),
    pytest.param([patient("2007-06-01"), VISIT,
                  screen_observation("o1", "2026-03-04", False, adult=False)],
                 [], DEN, id="age-18-adolescent-screen-out (CQL Patient Age 18 or Older: adult)"),
    pytest.param([ADULT, VISIT, screen_observation("o1", "2026-03-04", True),
                  medication_order("m1", "2026-03-05")], [], NUM,
                 id="coded-positive-screen-followed-up-in (CQL Depression screening positive)"),
    pytest.param([ADULT, VISIT,
                  screen_observation("o1", "2026-03-04", False, status="preliminary")], [], DEN,
                 id="coded-screen-not-final-out (CQL status = final)"),
    # --- exclusion: bipolar disorder before a qualifying visit --------------------------------
    pytest.param([ADULT, VISIT, condition("c1", "F31.9", "2026-03-03")], [], EXCL,
                 id="bipolar-day-before-visit-excluded (CQL History of Bipolar ... starts before)"),
    pytest.param([ADULT, VISIT, condition("c1", "F31.9", "2026-03-04T10:00:00Z")], [], DEN,
                 id="bipolar-on-visit-day-not-excluded (CQL starts before QualifyingEncounter)"),
    pytest.param([ADULT, VISIT, condition("c1", "F31.9", "2020-01-01",
                                          category="encounter-diagnosis")], [], DEN,
                 id="bipolar-encounter-diagnosis-out (CQL ConditionProblemsHealthConcerns)"),
    # --- exception: screening declined during the visit, no screen ----------------------------
    pytest.param([ADULT, VISIT, declined_observation("x1", "2026-03-04")], [], EXC,
                 id="declined-during-visit-exception (CQL Medical or Patient Reason ... Adult)"),
    pytest.param([ADULT, VISIT, declined_observation("x1", "2026-03-05")], [], DEN,
                 id="declined-after-visit-no-exception (CQL issued during QualifyingEncounter)"),
    pytest.param([ADULT, VISIT, declined_observation("x1", "2026-03-04")],
                 [score("phq9", "2026-03-04", 14)], DEN,
                 id="declined-but-screened-no-exception (CQL not Has Adult Depression Screening)"),
]


@pytest.mark.parametrize(("resources", "scores", "expected"), ROWS)
def test_cms2_populations(resources: list[dict[str, Any]], scores: list[Any],
                          expected: frozenset[str]) -> None:
    assert _pops(resources, scores) == expected


def test_unscreened_patient_gets_an_actionable_reason() -> None:
    outcome = cms2.evaluate(data([ADULT, VISIT], []), MP)
    assert outcome is not None and outcome.gap
    assert outcome.reason == ("no depression screen (PHQ-9 or PHQ-2) in the 14 days up to a "
                              "qualifying visit (last visit 2026-03-04): screen at the next visit")


def test_positive_unfollowed_patient_gets_the_deadline() -> None:
    outcome = cms2.evaluate(data([ADULT, VISIT], [score("phq9", "2026-03-04", 14, rid="q1")]), MP)
    assert outcome is not None and outcome.gap
    assert outcome.reason is not None
    assert "positive PHQ-9 on 2026-03-04" in outcome.reason and "by 2026-03-06" in outcome.reason
    assert "QuestionnaireResponse/q1" in outcome.evaluated and "Encounter/e1" in outcome.evaluated


def test_follow_up_is_evaluated_resource() -> None:
    outcome = cms2.evaluate(data([ADULT, VISIT, medication_order("m1", "2026-03-05")],
                                 [score("phq9", "2026-03-04", 14, rid="q1")]), MP)
    assert outcome is not None and outcome.has(NUMERATOR) and outcome.reason is None
    assert {"Encounter/e1", "QuestionnaireResponse/q1", "MedicationRequest/m1"} <= set(
        outcome.evaluated)


def test_coded_screen_values_are_the_published_snomed_codes() -> None:
    # CQL code declarations: positive 428181000124104, negative 428171000124102.
    obs = screen_observation("o1", "2026-03-04", True)
    assert obs["valueCodeableConcept"]["coding"][0] == {"system": SNOMED,
                                                         "code": cms2.POSITIVE}
