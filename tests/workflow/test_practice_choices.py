"""Practice choices the engine must respect: screening recency, AUDIT-C Q1-only, caseloads.

Rows cite a public source or name the practice-plan key that makes them a practice choice
(examples/practice-plan.toml documents each default).
"""

from __future__ import annotations

import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.instruments.result import Score
from bhi_fhir.practice_plan import PracticePlan, parse_practice_plan
from bhi_fhir.timeline import build_timeline
from bhi_fhir.workflow import apply, timeline_settings
from bhi_fhir.workflow.pipeline import run_apply

from .helpers import PATIENT, ROOT, TODAY, careplan, consent, day, patient, plan, protocol, score

Q1_ONLY = "points-from-q1-only"


def _plan(**screening: Any) -> PracticePlan:
    data = tomllib.loads((ROOT / "examples" / "practice-plan.toml").read_text(encoding="utf-8"))
    data["screening"].update(screening)
    return parse_practice_plan(data)


def _fired(
    scores: list[Score], resources: list[dict[str, Any]], p: PracticePlan | None = None
) -> dict[str, list[Any]]:
    p = p or plan()
    tl = build_timeline(PATIENT, resources, scores, TODAY, timeline_settings(p))
    result: dict[str, list[Any]] = {}
    for write in apply(protocol(), tl, p).writes:
        result.setdefault(write.rule, []).append(write)
    return result


# --- screening.lookback_days ---------------------------------------------------------------
LOOKBACK_ROWS = [
    # (scores, expected rules, why)
    ([("phq9", 15, 0)], {"engage", "consent"}, "Kroenke 2001 positive today"),
    ([("phq9", 15, 30)], {"engage", "consent"}, "lookback_days 30: day 30 is inside"),
    ([("phq9", 15, 31)], set(), "lookback_days 30: day 31 is history (practice choice)"),
    ([("gad7", 12, 45)], set(), "Spitzer 2006 positive, but older than lookback_days"),
    ([("phq9", 15, 40), ("gad7", 12, 5)], {"engage", "consent"}, "recent GAD-7 counts (Spitzer)"),
    ([("phq2", 4, 30)], {"phq9-followup"}, "Arroll 2010 positive PHQ-2 inside the lookback"),
    ([("phq2", 4, 31)], set(), "Arroll 2010 positive PHQ-2, older than lookback_days"),
    ([("auditc", 3, 30)], {"brief-intervention"}, "US Core AUDIT-C ≥3 women, inside the lookback"),
    ([("auditc", 3, 31)], set(), "US Core AUDIT-C ≥3 women, older than lookback_days"),
]


@pytest.mark.parametrize(("scores", "expected", "why"), LOOKBACK_ROWS)
def test_screens_older_than_the_lookback_are_history(
    scores: list[tuple[str, int, int]], expected: set[str], why: str
) -> None:
    made = [score(instrument, total, days) for instrument, total, days in scores]
    assert set(_fired(made, [patient("female")])) == expected, why


def test_lookback_is_the_plans() -> None:
    # Practice choice: a practice that only acts on same-day screens sets lookback_days = 0.
    same_day = _plan(lookback_days=0)
    assert set(_fired([score("phq9", 15, 0)], [patient()], same_day)) == {"engage", "consent"}
    assert set(_fired([score("phq9", 15, 1)], [patient()], same_day)) == set()


def test_crisis_ignores_the_screening_lookback() -> None:
    # SPRC SAFE-T: crises have their own window (crisis.consider_within_days), not lookback_days.
    rules = _fired([score("phq9", 6, 10, item9=1)], [patient()], _plan(lookback_days=0))
    assert "crisis-assessment" in rules


STALE_ENROLL_ROWS = [
    # (screen days ago, stale_screen_at_enrollment, expected rules, why)
    (30, "rescreen", {"enroll"}, "inside lookback_days (30): enroll on it (AIMS Center phase 2)"),
    (31, "rescreen", {"rescreen"}, "Bao 2016: no baseline within 30 days of enrolling: re-screen"),
    (45, "rescreen", {"rescreen"}, "AIMS: phase 2 starts with validated scales: re-screen first"),
    (31, "enroll", {"enroll"}, "screening.stale_screen_at_enrollment = enroll (practice choice)"),
]


@pytest.mark.parametrize(
    ("days_ago", "setting", "expected", "why"),
    STALE_ENROLL_ROWS,
    ids=["30-days-enroll", "31-days-rescreen", "45-days-rescreen", "31-days-plan-enrolls"],
)
def test_stale_screen_is_rescreened_before_enrollment(
    days_ago: int, setting: str, expected: set[str], why: str
) -> None:
    # Consent on file, not enrolled; engage/consent are history past the lookback (HEDIS DSF-E).
    p = _plan(stale_screen_at_enrollment=setting)
    rules = _fired([score("phq9", 15, days_ago)], [patient(), consent(5)], p)
    assert set(rules) - {"engage"} == expected, why


def test_rescreen_then_enroll_on_the_new_screen() -> None:
    # The re-screen Task, once a new positive screen is in, gives way to enrollment on it.
    stale = score("phq9", 15, 45, ident="old")
    (task,) = _fired([stale], [patient(), consent(5)])["rescreen"]
    assert task.resource["reasonReference"] == {"reference": "QuestionnaireResponse/old"}
    assert task.resource["restriction"]["period"]["end"] == "2026-12-03"  # first_contact_days
    assert "45 days old" in task.reason
    fresh = score("phq9", 13, 0, ident="new")
    rules = _fired([stale, fresh], [patient(), consent(5)])
    assert "rescreen" not in rules
    assert rules["enroll"][0].identifier.endswith("QuestionnaireResponse/new")
    negative = score("phq9", 6, 0, ident="neg")
    assert set(_fired([stale, negative], [patient(), consent(5)])) == set()


# --- AUDIT-C points from Q1 only (US Core AUDIT-C)
# ------------------------------------------------------
def _auditc(total: int, flags: tuple[str, ...], days_ago: int = 2) -> Score:
    return Score(
        instrument="auditc", total=total, severity=None, positive=True, complete=True,
        flags=flags, items={}, response_ref="QuestionnaireResponse/a1", subject_ref=PATIENT,
        authored=day(days_ago),
    )  # fmt: skip


Q1_ROWS = [
    # (flags, plan setting, Task expected, note expected, why)
    ((), "note", True, False, "US Core AUDIT-C positive at ≥3 for women: brief intervention"),
    ((Q1_ONLY,), "note", True, True,
     "US Core AUDIT-C: Q1-only, probably within limits, clinician decides"),
    ((Q1_ONLY,), "skip", False, False, "screening.auditc_q1_only = skip (practice choice)"),
    ((), "skip", True, False, "skip only concerns Q1-only screens"),
]


@pytest.mark.parametrize(("flags", "setting", "task", "note", "why"), Q1_ROWS)
def test_auditc_points_from_q1_only(
    flags: tuple[str, ...], setting: str, task: bool, note: bool, why: str
) -> None:
    rules = _fired([_auditc(3, flags)], [patient("female")], _plan(auditc_q1_only=setting))
    writes = rules.get("brief-intervention", [])
    assert bool(writes) is task, why
    if task:
        (write,) = writes
        assert ("every point from Q1" in write.reason) is note, why
        assert ("Every point came from Q1" in write.resource["description"]) is note, why
        assert ("Every point came from Q1" in write.resource["text"]["div"]) is note, why


def test_q1_only_flag_comes_from_the_scorer() -> None:
    # End to end: the scorer flags Q1 = 3, Q2 = Q3 = 0 (US Core AUDIT-C) and the Task says so.
    from bhi_fhir.instruments import score_response

    qr = {
        "resourceType": "QuestionnaireResponse", "id": "a1", "status": "completed",
        "questionnaire": "http://loinc.org/q/72109-2", "subject": {"reference": PATIENT},
        "authored": day(1),
        "item": [
            {"linkId": code, "answer": [{"valueCoding": {"system": "http://loinc.org",
                                                         "code": answer}}]}
            for code, answer in (("68518-0", "LA18928-4"), ("68519-8", "LA15694-5"),
                                 ("68520-6", "LA6270-8"))
        ],
    }  # fmt: skip
    scored = score_response(qr, patient_sex="female")
    assert scored.total == 3 and Q1_ONLY in scored.flags
    (write,) = _fired([scored], [patient("female")])["brief-intervention"]
    assert "every point from Q1" in write.reason


# --- caseloads from the input (lowest active caseload) ---------------------------------------
GARCIA, OKAFOR = "Practitioner/bhcm-garcia", "Practitioner/bhcm-okafor"  # capacity 60 / 45

CASELOAD_ROWS = [
    # (existing CarePlans as (manager, status), expected manager of the new enrollment, why)
    ([], GARCIA, "no caseload anywhere: the first care manager in the plan"),
    ([(GARCIA, "active")] * 3, OKAFOR, "garcia 3/60 active vs okafor 0/45"),
    ([(GARCIA, "completed")] * 3, GARCIA, "completed CarePlans are not an active caseload"),
    ([(GARCIA, "active")] + [(OKAFOR, "active")] * 2, GARCIA, "1/60 < 2/45: relative load"),
]


@pytest.mark.parametrize(("existing", "expected", "why"), CASELOAD_ROWS)
def test_apply_counts_caseloads_from_its_input(
    tmp_path: Path, existing: list[tuple[str, str]], expected: str, why: str
) -> None:
    lines: list[dict[str, Any]] = []
    for index, (manager, status) in enumerate(existing):
        other = f"Patient/other{index}"
        plan_ = careplan(30, ident=f"cp-other{index}", status=status)
        plan_["subject"] = {"reference": other}
        plan_["contributor"] = [{"reference": manager}]
        lines += [{"resourceType": "Patient", "id": f"other{index}"}, plan_]
    qr = {
        "resourceType": "QuestionnaireResponse", "id": "new1", "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1", "subject": {"reference": PATIENT},
        "authored": day(2),
        "item": [
            {"linkId": code, "answer": [{"valueCoding": {"system": "http://loinc.org",
                                                         "code": "LA6570-1"}}]}
            for code in ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2",
                         "44252-5", "44253-3")
        ] + [{"linkId": "44260-8", "answer": [{"valueCoding": {
            "system": "http://loinc.org", "code": "LA6568-5"}}]}],
    }  # fmt: skip
    lines += [patient(), consent(1), qr]
    source = tmp_path / "input.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    report = run_apply([source], plan(), date.fromisoformat(TODAY.isoformat()))
    assert report.errors == []
    (mine,) = [p for p in report.plans if p.patient == PATIENT]
    cp = next(w.resource for w in mine.writes if w.output == "enroll.careplan")
    assert cp["contributor"][0]["reference"] == expected, why


def test_count_caseloads_is_the_apply_input() -> None:
    # For shells that read CarePlans themselves (sync): same counting as `bhi-fhir apply`.
    from bhi_fhir.workflow import count_caseloads

    plans = []
    for index, (manager, status) in enumerate(
        [(GARCIA, "active"), (GARCIA, "active"), (OKAFOR, "active"), (OKAFOR, "completed")]
    ):
        cp = careplan(10, ident=f"cp{index}", status=status)
        cp["contributor"] = [{"reference": "Practitioner/psych-nguyen"}, {"reference": manager}]
        plans.append(cp)
    other = careplan(10, ident="not-bhi")
    other["category"] = []
    assert count_caseloads([*plans, other], plan()) == {GARCIA: 2, OKAFOR: 1}
