"""Which responses get screening Observations written by the sync: none authored after today
(no fact), none older than the practice plan's ``sync.backfill_days`` (a fact, kept for the
timeline's baselines, but not copied back as Observations)."""

from __future__ import annotations

from datetime import date

import pytest

from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from bhi_fhir.sync import DEFAULT_AGENT, PatientContext, plan_patient
from bhi_fhir.sync.planning import SCREENING_RULE
from bhi_fhir.sync.runner import default_plan_path, load_protocol_files
from tests.instruments.screen_records import phq9_response

TODAY = date(2026, 11, 26)
R4_DATETIME = "FHIR R4 dateTime, https://hl7.org/fhir/R4/datatypes.html#dateTime"
PLAN_CHOICE = "practice choice: examples/practice-plan.toml [sync] backfill_days"


def _plan(backfill_days: int | None) -> PracticePlan:
    plan = load_practice_plan(default_plan_path())
    return plan.model_copy(update={"sync": plan.sync.model_copy(
        update={"backfill_days": backfill_days})})


def _observations(authored: str, backfill_days: int | None) -> tuple[int, int, int]:
    """(screening Observations planned, responses before the horizon, future-dated screens)."""
    context = PatientContext("Patient/p1", {"resourceType": "Patient", "id": "p1"},
                             [phq9_response("p1", authored)])
    result = plan_patient(context, protocol=load_protocol_files(),
                          practice_plan=_plan(backfill_days), today=TODAY,
                          recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
    written = sum(1 for w in result.writes if w.rule == SCREENING_RULE)
    return written, result.before_backfill, result.future_dated


# (authored, backfill_days, written?, before the horizon?) — the example plan's zone is
# America/New_York (UTC-5 in November).
CASES = [
    # R4_DATETIME: a response authored after today is no fact and gets no Observations.
    pytest.param("2026-11-26", None, True, False, id="today-written"),
    pytest.param("2026-11-27", None, False, False, id="tomorrow-not-written"),
    pytest.param("2026-11-26T23:59:00-05:00", None, True, False, id="ny-last-minute-written"),
    pytest.param("2026-11-27T05:00:00Z", None, False, False, id="utc-27th-in-ny-not-written"),
    # PLAN_CHOICE: no horizon writes every past response.
    pytest.param("2016-11-26", None, True, False, id="no-horizon-ten-years-written"),
    # PLAN_CHOICE: the horizon's last day is written, the day before it is not.
    pytest.param("2025-11-26", 365, True, False, id="horizon-365-last-day-written"),
    pytest.param("2025-11-25", 365, False, True, id="horizon-365-day-before-not-written"),
    pytest.param("2026-11-26", 0, True, False, id="horizon-0-today-written"),
    pytest.param("2026-11-25", 0, False, True, id="horizon-0-yesterday-not-written"),
    # Both: a future response is future, not "before the horizon".
    pytest.param("2026-11-27", 0, False, False, id="horizon-0-tomorrow-future"),
]


@pytest.mark.parametrize(("authored", "backfill_days", "written", "before"), CASES)
def test_which_responses_get_screening_observations(
    authored: str, backfill_days: int | None, written: bool, before: bool
) -> None:
    n, before_backfill, future = _observations(authored, backfill_days)
    assert (n > 0) is written
    assert before_backfill == (1 if before else 0)
    if not written and not before:
        assert future == 1


def test_an_old_response_still_counts_for_the_timeline() -> None:
    # PLAN_CHOICE: the horizon limits what is written, not what is known. A positive PHQ-9 a
    # year ago is the baseline of the care already given; here it still plans the same
    # workflow with and without a horizon, only the screening Observations differ.
    def rules(backfill_days: int | None) -> set[str]:
        context = PatientContext("Patient/p1", {"resourceType": "Patient", "id": "p1"},
                                 [phq9_response("p1", "2026-11-20", rid="qr-new"),
                                  phq9_response("p1", "2024-01-02", rid="qr-old")])
        result = plan_patient(context, protocol=load_protocol_files(),
                              practice_plan=_plan(backfill_days), today=TODAY,
                              recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
        return {w.rule for w in result.writes if w.rule != SCREENING_RULE}

    assert rules(30) == rules(None)


def test_backfill_days_is_validated() -> None:
    import tomllib

    from bhi_fhir.practice_plan import PracticePlanError, parse_practice_plan

    text = default_plan_path().read_text(encoding="utf-8").replace(
        "# backfill_days = 365", "backfill_days = -1")
    with pytest.raises(PracticePlanError, match=r"sync\.backfill_days"):
        parse_practice_plan(tomllib.loads(text))
