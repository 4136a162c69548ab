"""The program metrics' windows and thresholds, each edge on both sides (table-driven).

Episodes are built by hand (``bhi_fhir.metrics.episode`` shape); day 0 is the enrollment day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from bhi_fhir.measures.common import Period
from bhi_fhir.metrics.program import (
    caseload,
    crisis_assessments,
    days_to_first_contact,
    feedback_results,
    followup_windows,
    minutes_per_patient_month,
    outcome_at,
    outcomes_at,
    quality_measures,
    review_by_week,
    screen_to_contact,
)
from bhi_fhir.timeline import TimelineSettings

START = date(2026, 1, 5)
WIDE = Period(date(2025, 1, 1), date(2027, 12, 31))
LATE = date(2027, 12, 31)
SETTINGS = TimelineSettings()  # the practice plan's defaults


def day(offset: int) -> str:
    return (START + timedelta(days=offset)).isoformat()


def episode(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "p1", "care_manager": "Ana", "status": "", "enrolled": True, "start": day(0),
        "baseline": {"date": day(-1), "total": 20}, "phq9": [[day(-1), 20]],
        "positive_screens": [day(-1)], "contacts": [], "reviews": [], "crises": [],
        "months": {}, "measures": {}, "feedback": [],
    }
    base.update(fields)
    return base


# --------------------------------------------------------------------------- contact
@pytest.mark.parametrize(
    ("screens", "contacts", "expected"),
    [
        pytest.param([day(-1)], [day(-1)], (day(-1), 0), id="same-day-contact"),
        pytest.param([day(-1)], [day(-2), day(3)], (day(-1), 4),
                     id="contact-before-screen-not-counted"),
        pytest.param([day(-40), day(-1)], [day(2)], (day(-1), 3),
                     id="latest-screen-on-or-before-enrollment"),
        pytest.param([day(0)], [day(0)], (day(0), 0), id="screen-on-enrollment-day"),
        pytest.param([day(5)], [day(6)], (day(5), 1), id="only-screen-after-enrollment"),
        pytest.param([day(-1)], [], (day(-1), None), id="no-contact-yet"),
        pytest.param([], [day(1)], None, id="no-positive-screen"),
    ],
)
def test_days_to_first_contact(screens: list[str], contacts: list[str],
                               expected: tuple[str, int | None] | None) -> None:
    # AIMS Center workflow: positive screen → care-manager contact (identify and engage)
    found = days_to_first_contact(episode(positive_screens=screens, contacts=contacts))
    assert (None if found is None else (found[0].isoformat(), found[1])) == expected


@pytest.mark.parametrize(
    ("wait", "bucket"),
    [
        pytest.param(7, "0-7 days", id="7-days-first-bucket"),
        pytest.param(8, "8-14 days", id="8-days-second-bucket"),
        # Bao 2016: contact within 4 weeks (28 days) — both sides
        pytest.param(28, "15-28 days", id="28-days-within-4-weeks-Bao-2016"),
        pytest.param(29, "over 28 days", id="29-days-over-4-weeks-Bao-2016"),
    ],
)
def test_screen_to_contact_buckets(wait: int, bucket: str) -> None:
    metric = screen_to_contact([episode(contacts=[day(-1 + wait)])], WIDE, LATE)
    assert dict((r[0], r[1]) for r in metric.rows)[bucket] == 1
    within = "1 of 1" if wait <= 28 else "0 of 1"
    assert within in metric.headline


@pytest.mark.parametrize(
    ("period_start", "counted"),
    [
        pytest.param(date.fromisoformat(day(-1)), 1, id="screen-on-period-start"),
        pytest.param(date.fromisoformat(day(0)), 0, id="screen-day-before-period"),
    ],
)
def test_screen_to_contact_period(period_start: date, counted: int) -> None:
    metric = screen_to_contact([episode(contacts=[day(1)])], Period(period_start, LATE), LATE)
    assert sum(int(r[1] or 0) for r in metric.rows) == counted


# --------------------------------------------------------------------------- PHQ-9 windows
@pytest.mark.parametrize(
    ("score_day", "window"),
    [
        # Bao 2016 (4-week follow-up): window 1 is days 0-27, window 2 days 28-55
        pytest.param(0, 0, id="day-0-first-window-Bao-2016"),
        pytest.param(27, 0, id="day-27-first-window-Bao-2016"),
        pytest.param(28, 1, id="day-28-second-window-Bao-2016"),
        pytest.param(55, 1, id="day-55-second-window-Bao-2016"),
        pytest.param(56, 2, id="day-56-third-window-Bao-2016"),
    ],
)
def test_followup_window_edges(score_day: int, window: int) -> None:
    metric = followup_windows([episode(phq9=[[day(-1), 20], [day(score_day), 12]])], WIDE, LATE)
    measured = [int(r[2] or 0) for r in metric.rows]
    assert measured == [1 if k == window else 0 for k in range(len(measured))]


def test_baseline_is_not_a_followup() -> None:
    # the baseline on the enrollment day (NCQA DRR-E baseline) is not its own follow-up
    metric = followup_windows([episode(baseline={"date": day(0), "total": 20},
                                       phq9=[[day(0), 20]])], WIDE, LATE)
    assert metric.rows[0][1:3] == (1, 0)


@pytest.mark.parametrize(
    ("today_offset", "eligible"),
    [
        pytest.param(27, 1, id="window-ends-today-counted"),
        pytest.param(26, 0, id="window-not-ended-not-counted"),
    ],
)
def test_followup_window_must_have_ended(today_offset: int, eligible: int) -> None:
    today = date.fromisoformat(day(today_offset))
    metric = followup_windows([episode()], WIDE, today)
    assert metric.rows[0][1] == eligible


# --------------------------------------------------------------------------- review
@pytest.mark.parametrize(
    ("review_day", "reviewed"),
    [
        # Bao 2016: psychiatric consultation by week 12 (treatment week 12 = days 84-90)
        pytest.param(90, 1, id="day-90-last-day-of-week-12-Bao-2016"),
        pytest.param(91, 0, id="day-91-week-13-too-late-Bao-2016"),
        pytest.param(0, 1, id="enrollment-day"),
        pytest.param(-1, 0, id="before-enrollment-not-this-episode"),
    ],
)
def test_review_by_week_12(review_day: int, reviewed: int) -> None:
    metric = review_by_week([episode(reviews=[day(review_day)])], WIDE, LATE, SETTINGS)
    assert metric.rows[0][1:3] == (1, reviewed)


@pytest.mark.parametrize(
    ("today_offset", "due"),
    [
        pytest.param(90, 1, id="week-12-ended-today-due-Bao-2016"),
        pytest.param(89, 0, id="week-12-not-ended-Bao-2016"),
    ],
)
def test_review_due_only_after_week_12(today_offset: int, due: int) -> None:
    metric = review_by_week([episode()], WIDE, date.fromisoformat(day(today_offset)), SETTINGS)
    assert metric.rows[0][1] == due


# --------------------------------------------------------------------------- outcomes
@pytest.mark.parametrize(
    ("baseline", "score", "response", "remission"),
    [
        # NCQA DRR-E: response = at least 50% below baseline
        pytest.param(20, 10, True, False, id="50pct-drop-response-NCQA-DRR-E"),
        pytest.param(20, 11, False, False, id="45pct-drop-no-response-NCQA-DRR-E"),
        pytest.param(11, 6, False, False, id="45.5pct-drop-no-response-NCQA-DRR-E"),
        # NCQA DRR-E / Kroenke 2001: remission = PHQ-9 below 5
        pytest.param(10, 4, True, True, id="score-4-remission-Kroenke-2001"),
        pytest.param(10, 5, True, False, id="score-5-no-remission-Kroenke-2001"),
    ],
)
def test_response_and_remission(baseline: int, score: int, response: bool,
                                remission: bool) -> None:
    ep = episode(baseline={"date": day(-1), "total": baseline},
                 phq9=[[day(-1), baseline], [day(84), score]])
    assert outcome_at(ep, START + timedelta(days=84), SETTINGS) == (score, response, remission)


@pytest.mark.parametrize(
    ("score_day", "found"),
    [
        # the most recent score in the 4 weeks up to the mark (NCQA DRR-E: most recent in window)
        pytest.param(84, True, id="on-the-mark-NCQA-DRR-E"),
        pytest.param(57, True, id="27-days-before-mark-NCQA-DRR-E"),
        pytest.param(56, False, id="28-days-before-mark-out-NCQA-DRR-E"),
        pytest.param(85, False, id="day-after-mark-out-NCQA-DRR-E"),
    ],
)
def test_outcome_window(score_day: int, found: bool) -> None:
    ep = episode(phq9=[[day(-1), 20], [day(score_day), 4]])
    score, _, _ = outcome_at(ep, START + timedelta(days=84), SETTINGS)
    assert (score is not None) == found


def test_most_recent_score_decides() -> None:
    ep = episode(phq9=[[day(-1), 20], [day(60), 4], [day(80), 15]])
    assert outcome_at(ep, START + timedelta(days=84), SETTINGS) == (15, False, False)


@pytest.mark.parametrize(
    ("baseline", "due"),
    [
        # positive baseline PHQ-9 >= 10 (Kroenke 2001; HEDIS DRR-E > 9)
        pytest.param(10, 1, id="baseline-10-counted-Kroenke-2001"),
        pytest.param(9, 0, id="baseline-9-not-counted-Kroenke-2001"),
    ],
)
def test_outcomes_need_positive_baseline(baseline: int, due: int) -> None:
    ep = episode(baseline={"date": day(-1), "total": baseline}, phq9=[[day(-1), baseline]])
    metric = outcomes_at([ep], WIDE, LATE, SETTINGS)
    assert [r[1] for r in metric.rows] == [due, due]


def test_outcomes_12_and_24_weeks() -> None:
    ep = episode(phq9=[[day(-1), 20], [day(80), 9], [day(168), 3]])
    metric = outcomes_at([ep], WIDE, LATE, SETTINGS)
    assert metric.rows == (("week 12", 1, 1, 100.0, 0.0), ("week 24", 1, 1, 100.0, 100.0))


# --------------------------------------------------------------------------- crisis
@pytest.mark.parametrize(
    ("assessed", "bucket"),
    [
        # calcipedia PHQ-9 / Kroenke 2001: item 9 above 0 needs same-day follow-up
        pytest.param(0, "same day", id="same-day-calcipedia"),
        pytest.param(1, "next day", id="next-day-calcipedia"),
        pytest.param(7, "2-7 days", id="7-days"),
        pytest.param(8, "over 7 days", id="8-days"),
        pytest.param(None, "not assessed yet", id="not-assessed"),
    ],
)
def test_crisis_time_to_assessment(assessed: int | None, bucket: str) -> None:
    ep = episode(enrolled=False, crises=[
        {"date": day(10), "assessed": None if assessed is None else day(10 + assessed)}])
    metric = crisis_assessments([ep], WIDE, LATE)
    assert dict((r[0], r[1]) for r in metric.rows)[bucket] == 1


# --------------------------------------------------------------------------- billing
def test_minutes_and_billable_rate() -> None:
    # CMS MLN909432: calendar-month service period; CPT: 99493 from 31 minutes
    eps = [
        episode(start="2026-01-05", months={"2026-01": {"minutes": 40, "codes": ["99492"]},
                                            "2026-02": {"minutes": 10, "codes": []}}),
        episode(start="2026-02-10", months={"2026-01": {"minutes": 0, "codes": []},
                                            "2026-02": {"minutes": 31, "codes": ["99493"]}}),
    ]
    metric = minutes_per_patient_month(eps, ["2026-01", "2026-02"])
    assert metric.rows == (("2026-01", 1, 40.0, 1, 100.0), ("2026-02", 2, 20.5, 1, 50.0))
    assert "2 of 3" in metric.headline


# --------------------------------------------------------------------------- others
def test_caseload_per_care_manager_leaves_out_deceased_and_not_enrolled() -> None:
    eps = [episode(care_manager="Ana"), episode(care_manager="Ana"),
           episode(care_manager="Ben", status="deceased"), episode(care_manager="Ben",
                                                                  enrolled=False)]
    metric = caseload(eps, {"Ana": 60, "Ben": 45})
    assert metric.rows == (("Ana", 2, 60), ("Ben", 0, 45))


def test_quality_measure_rate_leaves_out_exclusions() -> None:
    outcomes = {"CMS2": [frozenset({"initial-population", "denominator", "numerator"}),
                         frozenset({"initial-population", "denominator"}),
                         frozenset({"initial-population", "denominator",
                                    "denominator-exclusion"})]}
    metric = quality_measures(outcomes, {"CMS2": "Screening"})
    assert metric.rows == (("CMS2 Screening", 2, 1, 50.0),)


SURVEY = {
    "url": "https://example.org/Questionnaire/s", "title": "Staff",
    "item": [
        {"linkId": "q1", "text": "Handoffs are timely", "type": "choice", "answerOption": [
            {"valueCoding": {"code": "disagree", "display": "Disagree"},
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                            "valueDecimal": 1}]},
            {"valueCoding": {"code": "agree", "display": "Agree"},
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                            "valueDecimal": 2}]}]},
        {"linkId": "q2", "text": "Comments", "type": "text"},
    ],
}


def _answer(authored: str, code: str, comment: str = "") -> dict[str, Any]:
    return {"questionnaire": "https://example.org/Questionnaire/s|1", "authored": authored,
            "item": [{"linkId": "q1", "answer": [{"valueCoding": {"code": code}}]},
                     {"linkId": "q2", "answer": [{"valueString": comment}]}]}


def test_feedback_without_responses() -> None:
    metric = feedback_results([], WIDE, {SURVEY["url"]: SURVEY})
    assert metric.headline == "no feedback collected"
    assert metric.rows == ()


def test_feedback_means_scale_points_and_hides_free_text() -> None:
    responses = [_answer("2026-03-01", "agree", "Jane Doe was kind"),
                 _answer("2026-03-02", "disagree"), _answer("2026-03-03", "agree"),
                 _answer("2024-03-02", "disagree")]  # before the period
    metric = feedback_results(responses, Period(date(2026, 1, 1), date(2026, 12, 31)),
                              {SURVEY["url"]: SURVEY})
    assert metric.rows == (("Staff: Handoffs are timely", 3, 1.67, 2.0, "Agree 2, Disagree 1"),)
    assert metric.headline == "3 responses (Staff: 3)"
    assert "Jane" not in repr(metric)
