"""Program metrics over a period, from patients' episodes: pure, no I/O.

Each metric is a :class:`Metric`: its definition in words (shown beside the chart and in every
export), the public source of each threshold, a headline, and one table (the chart's data and
its CSV). The clinical thresholds are the practice plan's (``TimelineSettings``: the same values
the registry and the workflow act on), never literals here.

Population: the episodes given (the registry's patients — enrolled in the practice's BHI
CarePlan). A window is counted in a period when it *ends* in the period and on or before
``today``: a patient whose week 12 is still ahead is not yet in the week-12 denominator.
Day 0 is the enrollment day (``CarePlan.period.start``); treatment week ``w`` is days
``7w … 7w+6``, as the timeline counts ``weeksInTreatment``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any

from bhi_fhir.fhirjson import day as _day  # the day a FHIR date/dateTime is written on
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    NUMERATOR,
    Period,
)
from bhi_fhir.timeline import TimelineSettings

__all__ = [
    "FOLLOW_UP_WINDOW_DAYS",
    "OUTCOME_WINDOW_DAYS",
    "Metric",
    "caseload",
    "crisis_assessments",
    "days_to_first_contact",
    "feedback_results",
    "followup_windows",
    "measure_populations",
    "minutes_per_patient_month",
    "outcome_at",
    "outcomes_at",
    "program_metrics",
    "quality_measures",
    "review_by_week",
    "screen_to_contact",
]

Cell = str | int | float | None
Episode = Mapping[str, Any]

# Bao 2016: a follow-up contact within 4 weeks; the registry's "no contact in 4 weeks" flag.
FOLLOW_UP_WINDOW_DAYS = 28
# The score that decides response/remission at a week mark: the most recent PHQ-9 in the 4 weeks
# up to the mark (NCQA DRR-E takes the most recent score of its follow-up window).
OUTCOME_WINDOW_DAYS = 28


@dataclass(frozen=True)
class Metric:
    id: str
    title: str
    definition: str
    source: str
    headline: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    chart: str = "bar"  # bar | none
    # The chart: labels from column 0, one bar series per listed column.
    series: tuple[int, ...] = (1,)
    percent: bool = False  # the series are percentages (axis 0-100)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "definition": self.definition,
            "source": self.source, "headline": self.headline, "columns": list(self.columns),
            "rows": [list(r) for r in self.rows], "chart": self.chart,
            "series": list(self.series), "percent": self.percent,
        }


def _pct(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def _rate_text(part: int, whole: int) -> str:
    if not whole:
        return "no patients in the period yet"
    return f"{part} of {whole} ({_pct(part, whole)}%)"


def _enrolled(episodes: Sequence[Episode]) -> list[Episode]:
    return [e for e in episodes if e.get("enrolled") and _day(e.get("start")) is not None]


def _counts_in(day: date, period: Period, today: date) -> bool:
    return period.start <= day <= min(period.end, today)


# --------------------------------------------------------------------------- caseload
def caseload(episodes: Sequence[Episode], capacity: Mapping[str, int] | None = None) -> Metric:
    """Enrolled patients in the caseload (not deceased or inactive) per care manager."""
    counts: dict[str, int] = {}
    for episode in episodes:
        if episode.get("enrolled") and not episode.get("status"):
            name = str(episode.get("care_manager") or "(no care manager)")
            counts[name] = counts.get(name, 0) + 1
    capacity = capacity or {}
    for name in capacity:
        counts.setdefault(name, 0)
    rows = tuple((name, counts[name], capacity.get(name)) for name in sorted(counts))
    total = sum(counts.values())
    return Metric(
        "caseload", "Caseload per care manager",
        "Patients enrolled in the practice's BHI care plan and in the caseload (not recorded "
        "deceased or inactive), per care manager (the enrollment's care-team contributor the "
        "practice plan names), as of the day the figures were computed. Capacity is the "
        "practice plan's team.care_managers capacity.",
        "AIMS Center implementation guide (registry reports caseload size); practice plan",
        f"{total} patients across {len(counts)} care managers",
        ("care manager", "patients", "capacity"), rows, series=(1, 2),
    )


# --------------------------------------------------------------------------- engagement
def _index_screen(episode: Episode) -> date | None:
    """The positive screen that led to enrollment: the latest on or before the enrollment day,
    else the earliest after it."""
    start = _day(episode.get("start"))
    screens = sorted(d for s in episode.get("positive_screens") or [] if (d := _day(s)))
    if not screens or start is None:
        return None
    before = [d for d in screens if d <= start]
    return before[-1] if before else screens[0]


CONTACT_BUCKETS = (("0-7 days", 7), ("8-14 days", 14), ("15-28 days", FOLLOW_UP_WINDOW_DAYS))


def days_to_first_contact(episode: Episode) -> tuple[date, int | None] | None:
    """(the index screen's day, days to the first care-manager contact on or after it, None
    when none yet), or None without an index screen."""
    screen = _index_screen(episode)
    if screen is None:
        return None
    after = sorted(d for c in episode.get("contacts") or [] if (d := _day(c)) and d >= screen)
    return screen, ((after[0] - screen).days if after else None)


def screen_to_contact(episodes: Sequence[Episode], period: Period, today: date) -> Metric:
    waits: list[int] = []
    waiting = 0
    for episode in _enrolled(episodes):
        found = days_to_first_contact(episode)
        if found is None or not _counts_in(found[0], period, today):
            continue
        if found[1] is None:
            waiting += 1
        else:
            waits.append(found[1])
    buckets: list[tuple[Cell, ...]] = []
    low = 0
    for label, high in CONTACT_BUCKETS:
        buckets.append((label, sum(1 for w in waits if low <= w <= high)))
        low = high + 1
    buckets.append((f"over {FOLLOW_UP_WINDOW_DAYS} days", sum(1 for w in waits if w >= low)))
    buckets.append(("no contact yet", waiting))
    within = sum(1 for w in waits if w <= FOLLOW_UP_WINDOW_DAYS)
    screened = len(waits) + waiting
    middle = median(waits) if waits else 0
    headline = (f"median {middle:g} day{'' if middle == 1 else 's'}; contacted within 4 weeks: "
                f"{_rate_text(within, screened)}" if waits else _rate_text(0, screened))
    return Metric(
        "screen-to-contact", "Time from positive screen to first contact",
        "For each enrolled patient whose index screen falls in the period: days from the "
        "positive screen that led to enrollment (the latest positive screen on or before the "
        "enrollment day, else the earliest after it; positive at the practice plan's cut "
        "points) to the first care-manager contact on or after that day (a finished "
        "care-management Encounter or Procedure, or a completed engage/outreach Task).",
        "AIMS Center workflow (identify and engage); Bao 2016 (contact within 4 weeks); "
        "PHQ-9 >= 10 Kroenke 2001",
        headline, ("days to first contact", "patients"), tuple(buckets),
    )


def followup_windows(episodes: Sequence[Episode], period: Period, today: date,
                     windows: int = 6) -> Metric:
    """Per 4-week window since enrollment: enrolled patients whose window ended in the period,
    and how many had a follow-up PHQ-9 (after the baseline) in it."""
    eligible = [0] * windows
    measured = [0] * windows
    for episode in _enrolled(episodes):
        start = _day(episode["start"])
        assert start is not None
        baseline = _day((episode.get("baseline") or {}).get("date"))
        days = [d for day, _ in episode.get("phq9") or [] if (d := _day(day))
                and (baseline is None or d > baseline)]
        for k in range(windows):
            first = start + timedelta(days=FOLLOW_UP_WINDOW_DAYS * k)
            last = first + timedelta(days=FOLLOW_UP_WINDOW_DAYS - 1)
            if not _counts_in(last, period, today):
                continue
            eligible[k] += 1
            if any(first <= d <= last for d in days):
                measured[k] += 1
    rows = tuple(
        (f"weeks {4 * k}-{4 * k + 3}", eligible[k], measured[k], _pct(measured[k], eligible[k]))
        for k in range(windows)
    )
    return Metric(
        "phq9-followup", "Follow-up PHQ-9 in each 4-week window",
        "Enrolled patients per 4-week window since enrollment (window k: days 28(k-1) to "
        "28k-1, day 0 the enrollment day) whose window ended in the period; the share with a "
        "complete PHQ-9 in that window after the baseline score (the baseline itself is not a "
        "follow-up).",
        "Bao 2016 (follow-up within 4 weeks); AIMS Center (measurement-based care); "
        "HEDIS DMS-E (PHQ-9 in each assessment period)",
        (f"{_rate_text(sum(measured), sum(eligible))} patient-windows measured"
         if sum(eligible) else "no 4-week window ended in the period yet"),
        ("window", "patients", "with follow-up PHQ-9", "%"), rows, series=(3,), percent=True,
    )


def review_by_week(episodes: Sequence[Episode], period: Period, today: date,
                   settings: TimelineSettings) -> Metric:
    """Enrolled patients whose review week ended in the period, and how many had a completed
    psychiatric case review by then."""
    week = settings.review_window_end_week
    last_day = (week + 1) * 7 - 1
    due = reviewed = 0
    for episode in _enrolled(episodes):
        start = _day(episode["start"])
        assert start is not None
        deadline = start + timedelta(days=last_day)
        if not _counts_in(deadline, period, today):
            continue
        due += 1
        if any(start <= d <= deadline for r in episode.get("reviews") or [] if (d := _day(r))):
            reviewed += 1
    return Metric(
        "psychiatric-review", f"Reviewed by the psychiatric consultant by week {week}",
        f"Enrolled patients whose treatment week {week} ended in the period (day {last_day} "
        f"after enrollment); the share with a completed psychiatric case review Task between "
        f"enrollment and the end of week {week} (the practice plan's review window).",
        "Bao 2016 (psychiatric consultation between weeks 8 and 12); IMPACT (review at "
        "10-12 weeks); AIMS Center (share who got a psychiatric review)",
        _rate_text(reviewed, due),
        ("", "patients", "reviewed", "%"),
        ((f"week {week}", due, reviewed, _pct(reviewed, due)),), series=(3,), percent=True,
    )


def outcome_at(episode: Episode, mark: date, settings: TimelineSettings
               ) -> tuple[int | None, bool, bool]:
    """(the deciding PHQ-9, response, remission) at ``mark``: the most recent PHQ-9 after the
    baseline in the 4 weeks up to the mark (days mark-27 ... mark)."""
    baseline = episode.get("baseline") or {}
    base_total, base_day = baseline.get("total"), _day(baseline.get("date"))
    first = mark - timedelta(days=OUTCOME_WINDOW_DAYS - 1)
    scores = [(d, int(total)) for day, total in episode.get("phq9") or []
              if (d := _day(day)) and first <= d <= mark and (base_day is None or d > base_day)]
    if not scores or not isinstance(base_total, int):
        return None, False, False
    score = max(scores)[1]
    response = base_total > 0 and (base_total - score) * 100 / base_total >= \
        settings.response_drop_percent
    return score, response, score < settings.remission_below


def outcomes_at(episodes: Sequence[Episode], period: Period, today: date,
                settings: TimelineSettings, weeks: Sequence[int] = (12, 24)) -> Metric:
    rows: list[tuple[Cell, ...]] = []
    for week in weeks:
        due = scored = responded = remitted = 0
        for episode in _enrolled(episodes):
            start = _day(episode["start"])
            base = (episode.get("baseline") or {}).get("total")
            assert start is not None
            mark = start + timedelta(days=7 * week)
            if not isinstance(base, int) or base < settings.phq9_positive:
                continue
            if not _counts_in(mark, period, today):
                continue
            due += 1
            score, response, remission = outcome_at(episode, mark, settings)
            scored += score is not None
            responded += response
            remitted += remission
        rows.append((f"week {week}", due, scored, _pct(responded, due), _pct(remitted, due)))
    return Metric(
        "response-remission", "Response and remission at 12 and 24 weeks",
        "Enrolled patients with a positive baseline PHQ-9 (at or above the practice plan's "
        f"cut point, {settings.phq9_positive}) whose week mark (day 7 x week after enrollment) "
        "fell in the period. The deciding score is the most recent PHQ-9 after the baseline in "
        f"the {OUTCOME_WINDOW_DAYS} days up to the mark; no score counts as neither. Response: "
        f"at least {settings.response_drop_percent:g}% below the baseline. Remission: below "
        f"{settings.remission_below}.",
        "NCQA HEDIS DRR-E (response >= 50% drop, remission PHQ-9 < 5, most recent score in "
        "the window); Kroenke 2001 (PHQ-9 < 5 minimal)",
        "; ".join(f"{r[0]}: response {r[3]}%, remission {r[4]}% of {r[1]}" if r[1]
                  else f"{r[0]}: no patient reached it in the period yet" for r in rows),
        ("mark", "patients", "with a score", "response %", "remission %"), tuple(rows),
        series=(3, 4), percent=True,
    )


# --------------------------------------------------------------------------- crisis
CRISIS_BUCKETS = (("same day", 0), ("next day", 1), ("2-7 days", 7))


def crisis_assessments(episodes: Sequence[Episode], period: Period, today: date) -> Metric:
    waits: list[int] = []
    open_ = 0
    for episode in episodes:
        for crisis in episode.get("crises") or []:
            day = _day(crisis.get("date"))
            if day is None or not _counts_in(day, period, today):
                continue
            done = _day(crisis.get("assessed"))
            if done is None:
                open_ += 1
            else:
                waits.append((done - day).days)
    rows: list[tuple[Cell, ...]] = []
    low = 0
    for label, high in CRISIS_BUCKETS:
        rows.append((label, sum(1 for w in waits if low <= w <= high)))
        low = high + 1
    rows.append(("over 7 days", sum(1 for w in waits if w >= low)))
    rows.append(("not assessed yet", open_))
    total = len(waits) + open_
    same_day = sum(1 for w in waits if w == 0)
    return Metric(
        "crisis", "Crisis screens and time to assessment",
        "Screens in the period that need a same-day safety assessment (PHQ-9/PHQ-A item 9 "
        "above 0, a PHQ-A suicide question yes, EPDS item 10 above 0, any C-SSRS risk), and the "
        "days from the screen to the completion of the same-day assessment covering it (the "
        "crisis-assessment request or Task, completed).",
        "Kroenke 2001 and calcipedia PHQ-9 (item 9 needs same-day follow-up); Columbia C-SSRS "
        "triage; SAFE-T (SPRC)",
        (f"{total} crisis screens; assessed the same day: {_rate_text(same_day, total)}"
         if total else "no crisis screens in the period"),
        ("time to assessment", "screens"), tuple(rows),
    )


# --------------------------------------------------------------------------- billing
def minutes_per_patient_month(episodes: Sequence[Episode], months: Sequence[str]) -> Metric:
    rows: list[tuple[Cell, ...]] = []
    all_minutes: list[int] = []
    all_billable = 0
    for key in months:
        minutes: list[int] = []
        billable = 0
        for episode in _enrolled(episodes):
            start = _day(episode["start"])
            assert start is not None
            if start.strftime("%Y-%m") > key:
                continue
            month = (episode.get("months") or {}).get(key)
            if month is None:
                continue
            minutes.append(int(month.get("minutes") or 0))
            billable += bool(month.get("codes"))
        all_minutes += minutes
        all_billable += billable
        mean = round(sum(minutes) / len(minutes), 1) if minutes else None
        rows.append((key, len(minutes), mean, billable, _pct(billable, len(minutes))))
    mean_all = round(sum(all_minutes) / len(all_minutes), 1) if all_minutes else None
    return Metric(
        "minutes", "Minutes per patient-month and billable rate",
        "Each calendar month of the period from the enrollment's month on is a patient-month "
        "of an enrolled patient. Minutes: care-management minutes counted for billing (after "
        "consent, discharge and separately billed services), mean per patient-month. Billable: "
        "patient-months whose minutes and requirements reach a code (CPT time rules).",
        "CMS MLN909432 (calendar-month service period, requirements); CPT descriptors "
        "(99492/99493/99494/G2214 minimum minutes)",
        f"{mean_all if mean_all is not None else '-'} minutes per patient-month; billable: "
        + _rate_text(all_billable, len(all_minutes)),
        ("month", "patient-months", "mean minutes", "billable", "billable %"), tuple(rows),
        series=(2, 4),
    )


# --------------------------------------------------------------------------- measures
def measure_populations(episodes: Sequence[Episode]) -> dict[str, list[frozenset[str]]]:
    """Each measure's outcomes (the populations of each patient) kept in the episodes."""
    found: dict[str, list[frozenset[str]]] = {}
    for episode in episodes:
        for measure_id, populations in (episode.get("measures") or {}).items():
            found.setdefault(measure_id, []).append(frozenset(populations))
    return found


def quality_measures(outcomes: Mapping[str, Sequence[frozenset[str]]],
                     titles: Mapping[str, str]) -> Metric:
    """Each measure's performance rate from its patients' populations."""
    rows: list[tuple[Cell, ...]] = []
    for measure_id, title in titles.items():
        denominator = numerator = 0
        for populations in outcomes.get(measure_id) or ():
            if DENOMINATOR not in populations or populations & {DENOMINATOR_EXCLUSION,
                                                                 DENOMINATOR_EXCEPTION}:
                continue
            denominator += 1
            numerator += NUMERATOR in populations
        rows.append((f"{measure_id} {title}", denominator, numerator,
                     _pct(numerator, denominator)))
    return Metric(
        "measures", "Quality measures",
        "Each measure as its specification defines it (bhi_fhir.measures), for the period: "
        "performance rate = numerator / (denominator - exclusions - exceptions).",
        "CMS2 (eCQI), CMS159v14 (eCQI), NCQA HEDIS measures where implemented",
        "; ".join(f"{str(r[0]).split(' ', 1)[0]} {r[3]}%" for r in rows if r[3] is not None)
        or "no patient in any measure's denominator",
        ("measure", "denominator", "numerator", "rate %"), tuple(rows), series=(3,),
        percent=True,
    )


# --------------------------------------------------------------------------- feedback
def _options(question: Mapping[str, Any]) -> dict[str, tuple[str, float | None]]:
    """code → (display, the option's ordinalValue/itemWeight or None) of a choice item."""
    found: dict[str, tuple[str, float | None]] = {}
    for option in question.get("answerOption") or []:
        coding = option.get("valueCoding") or {}
        weight = next((float(e["valueDecimal"]) for e in option.get("extension") or []
                       if str(e.get("url", "")).endswith(("ordinalValue", "itemWeight"))
                       and isinstance(e.get("valueDecimal"), int | float)), None)
        found[str(coding.get("code"))] = (str(coding.get("display") or coding.get("code")),
                                          weight)
    return found


def feedback_results(responses: Sequence[Mapping[str, Any]], period: Period,
                     surveys: Mapping[str, Mapping[str, Any]] | None = None) -> Metric:
    """Completed feedback responses authored in the period, per survey question: how many
    answered, the mean of the answers' scale points (the Questionnaire's ordinalValue) out of
    the scale's top, and how many chose each option. Free text is never shown."""
    surveys = surveys or {}
    counted: dict[str, int] = {}
    tallies: dict[tuple[str, str], dict[str, int]] = {}
    for response in responses:
        day = _day(response.get("authored"))
        canonical = str(response.get("questionnaire") or "").split("|", 1)[0]
        survey = surveys.get(canonical)
        if day is None or day not in period or survey is None:
            continue
        counted[canonical] = counted.get(canonical, 0) + 1
        for item in _items(response.get("item") or []):
            for answer in item.get("answer") or []:
                code = (answer.get("valueCoding") or {}).get("code")
                if isinstance(code, str):
                    tally = tallies.setdefault((canonical, str(item.get("linkId"))), {})
                    tally[code] = tally.get(code, 0) + 1
    rows: list[tuple[Cell, ...]] = []
    for canonical, survey in surveys.items():
        for question in _items(survey.get("item") or []):
            chosen = tallies.get((canonical, str(question.get("linkId"))))
            if not chosen:
                continue
            options = _options(question)
            weighted = [(options[c][1], n) for c, n in chosen.items()
                        if c in options and options[c][1] is not None]
            answers = sum(chosen.values())
            mean = (round(sum(float(w or 0) * n for w, n in weighted)
                          / sum(n for _, n in weighted), 2) if weighted else None)
            top = max((w for _, w in options.values() if w is not None), default=None)
            spread = ", ".join(f"{options.get(c, (c, None))[0]} {n}"
                               for c, n in sorted(chosen.items(), key=lambda kv: -kv[1]))
            rows.append((f"{survey.get('title') or canonical}: {question.get('text')}",
                         answers, mean, top, spread))
    total = sum(counted.values())
    names = "; ".join(f"{surveys[c].get('title') or c}: {n}" for c, n in counted.items())
    return Metric(
        "feedback", "Patient and staff feedback",
        "Completed patient experience and staff workflow surveys (profiles/questionnaires/"
        "feedback) authored in the period: per question, how many answered, the mean of the "
        "answers' scale points out of the scale's top (higher is better), and how many chose "
        "each option. Free-text answers are not shown.",
        "AMA BHI workflow design (patient and staff feedback); the surveys' own sources",
        f"{total} responses ({names})" if total else "no feedback collected",
        ("question", "answers", "mean", "scale top", "answers by option"), tuple(rows),
        chart="bar" if rows else "none", series=(2,),
    )


def _items(items: Sequence[Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, Mapping):
            found.append(item)
            found += _items(item.get("item") or [])
    return found


# --------------------------------------------------------------------------- all
def program_metrics(
    episodes: Sequence[Episode],
    period: Period,
    today: date,
    settings: TimelineSettings,
    *,
    months: Sequence[str] = (),
    measure_titles: Mapping[str, str] | None = None,
    measure_outcomes: Mapping[str, Sequence[frozenset[str]]] | None = None,
    capacity: Mapping[str, int] | None = None,
    feedback: Sequence[Mapping[str, Any]] = (),
    surveys: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Metric]:
    """Every metric, in the page's order."""
    steps: list[Callable[[], Metric]] = [
        lambda: caseload(episodes, capacity),
        lambda: screen_to_contact(episodes, period, today),
        lambda: followup_windows(episodes, period, today),
        lambda: review_by_week(episodes, period, today, settings),
        lambda: outcomes_at(episodes, period, today, settings),
        lambda: crisis_assessments(episodes, period, today),
        lambda: minutes_per_patient_month(episodes, months),
        lambda: quality_measures(
            measure_populations(episodes) if measure_outcomes is None else measure_outcomes,
            measure_titles or {}),
        lambda: feedback_results(feedback, period, surveys),
    ]
    return [step() for step in steps]
