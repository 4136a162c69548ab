"""Table-driven tests per rule, with boundary rows; every row cites its public source.

Thresholds are the example practice plan's, which are the package defaults.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.workflow import apply

from .helpers import (
    careplan,
    consent,
    contact,
    fired,
    patient,
    plan,
    protocol,
    score,
    timeline,
)

# --- identify and engage: engage / consent / enroll -------------------------------------------
SCREEN_ROWS = [
    # (instrument, total, consent on file, expected rules, source)
    ("phq9", 4, False, set(), "Kroenke 2001 0–4 minimal, not positive"),
    ("phq9", 5, False, set(), "Kroenke 2001 5–9 mild, not positive"),
    ("phq9", 9, False, set(), "Kroenke 2001 positive at ≥10: 9 is negative"),
    ("phq9", 10, False, {"engage", "consent"}, "Kroenke 2001 positive at ≥10 (HEDIS DSF)"),
    ("gad7", 9, False, set(), "Spitzer 2006 positive at ≥10: 9 is negative"),
    ("gad7", 10, False, {"engage", "consent"}, "Spitzer 2006 positive at ≥10"),
    ("phq9", 10, True, {"engage", "enroll"}, "consent on file → enroll (MLN909432; AIMS phase 2)"),
    ("gad7", 15, True, {"engage", "enroll"}, "Spitzer 2006 positive + consent → enroll"),
]


@pytest.mark.parametrize(("instrument", "total", "has_consent", "expected", "source"), SCREEN_ROWS)
def test_screening_rules(
    instrument: str, total: int, has_consent: bool, expected: set[str], source: str
) -> None:
    resources = [patient(), *([consent()] if has_consent else [])]
    assert set(fired([score(instrument, total, 2)], resources)) == expected, source


def test_enrolled_patient_is_not_engaged_again() -> None:
    # AIMS Center: enrollment = active CarePlan with SNOMED 718347000 (FHIR care-plan-category).
    rules = fired([score("phq9", 14, 20), score("phq9", 12, 2)], [careplan(14), contact(3)])
    assert not {"engage", "consent", "enroll"} & set(rules)


def test_enroll_outputs_careplan_tasks_and_care_team() -> None:
    # US Core CarePlan: text, status, intent, category assess-plan, subject; FHIR care-plan-category
    # 718347000.
    writes = fired([score("phq9", 15, 2)], [patient(), consent()])["enroll"]
    kinds = sorted(w.resource_type for w in writes)
    assert kinds == ["CarePlan", "Task", "Task"]
    careplan_ = next(w.resource for w in writes if w.resource_type == "CarePlan")
    codes = {c["code"] for cat in careplan_["category"] for c in cat["coding"]}
    assert {"assess-plan", "718347000"} <= codes
    assert careplan_["text"]["status"] == "generated" and careplan_["text"]["div"]
    assert careplan_["status"] == "active" and careplan_["intent"] == "plan"
    assert careplan_["subject"] == {"reference": "Patient/p1"}
    assert careplan_["contained"][0]["resourceType"] == "CareTeam"
    assert len(careplan_["activity"]) == 2  # initial assessment + follow-up measurement
    follow_up = next(w for w in writes if w.output == "enroll.followup-measurement")
    # HEDIS DMS-E cadence: plan's measurement_interval_days (28) after enrollment (today).
    assert follow_up.resource["restriction"]["period"]["end"] == "2026-12-24"


def test_new_enrollment_goes_to_lowest_caseload() -> None:
    # New enrollments go to the care manager with the lowest active caseload.
    tl = timeline([score("phq9", 15, 2)], [patient(), consent()])
    loads = {"Practitioner/bhcm-garcia": 40, "Practitioner/bhcm-okafor": 10}
    result = apply(protocol(), tl, plan(), caseloads=loads)
    cp = next(w.resource for w in result.writes if w.resource_type == "CarePlan")
    assert cp["contributor"][0]["reference"] == "Practitioner/bhcm-okafor"


# --- crisis ------------------------------------------------------------------------------------
CRISIS_ROWS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    # (score kwargs, expectation, source)
    (
        {"instrument": "phq9", "total": 3, "item9": 1},
        {"assessment": True, "referral": None},
        "Kroenke 2001 item 9 > 0 needs same-day follow-up whatever the total",
    ),
    (
        {"instrument": "phq9", "total": 14, "item9": 0},
        {"assessment": False, "referral": None},
        "Kroenke 2001 item 9 = 0: no crisis flag",
    ),
    (
        {"instrument": "cssrs", "total": None, "risk": "low"},
        {"assessment": True, "referral": None},
        "Columbia: low risk still needs a BH evaluation; no referral mapped for low",
    ),
    (
        {"instrument": "cssrs", "total": None, "risk": "moderate"},
        {"assessment": True, "referral": "urgent"},
        "design proposal: urgent for moderate (package default)",
    ),
    (
        {"instrument": "cssrs", "total": None, "risk": "high"},
        {"assessment": True, "referral": "stat"},
        "Columbia triage high: refer immediately; FHIR request-priority stat",
    ),
]


@pytest.mark.parametrize(("kwargs", "expect", "source"), CRISIS_ROWS)
def test_crisis_rules(kwargs: dict[str, Any], expect: dict[str, Any], source: str) -> None:
    instrument = kwargs.pop("instrument")
    total = kwargs.pop("total")
    rules = fired([score(instrument, total, 1, **kwargs)], [patient()])
    assessment = rules.get("crisis-assessment", [])
    assert bool(assessment) is expect["assessment"], source
    if expect["assessment"]:
        assert sorted(w.resource_type for w in assessment) == ["ServiceRequest", "Task"]
        assert {w.priority for w in assessment} == {"asap"}, "asap: same-day assessment (SAFE-T)"
    referral = rules.get("crisis-referral", [])
    assert (referral[0].priority if referral else None) == expect["referral"], source


def test_crisis_referral_goes_to_the_directory_level() -> None:
    # SAMHSA 2020 levels of care; the plan maps high → emergency-department.
    (write,) = fired([score("cssrs", None, 0, risk="high")], [patient()])["crisis-referral"]
    assert write.resource["performer"][0]["reference"] == "Organization/riverside-general-ed"


@pytest.mark.parametrize(
    ("days_ago", "fires"),
    [(14, True), (15, False)],
    ids=["14-days-current", "15-days-history"],
)
def test_crisis_window(days_ago: int, fires: bool) -> None:
    # Practice plan crisis.consider_within_days (practice choice; SPRC SAFE-T same-day follow-up).
    rules = fired([score("phq9", 6, days_ago, item9=2)], [patient()])
    assert ("crisis-assessment" in rules) is fires


# --- brief screens -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total", "phq9_days_ago", "fires", "source"),
    [
        (2, None, False, "Arroll 2010 PHQ-2 positive at ≥3: 2 is negative"),
        (3, None, True, "Arroll 2010 positive PHQ-2 (≥3) should lead to a PHQ-9"),
        (3, 1, False, "HEDIS DSF-E: a full-length instrument the same day after the brief screen"),
        (3, 30, True, "Arroll 2010: an older PHQ-9 does not follow up this PHQ-2"),
    ],
)
def test_phq9_followup(total: int, phq9_days_ago: int | None, fires: bool, source: str) -> None:
    scores = [score("phq2", total, 1)]
    if phq9_days_ago is not None:
        scores.append(score("phq9", 6, phq9_days_ago))
    assert ("phq9-followup" in fired(scores, [patient()])) is fires, source


@pytest.mark.parametrize(
    ("gender", "total", "fires", "source"),
    [
        ("female", 2, False, "US Core AUDIT-C women positive at ≥3"),
        ("female", 3, True, "US Core AUDIT-C women positive at ≥3"),
        ("male", 3, False, "US Core AUDIT-C men positive at ≥4"),
        ("male", 4, True, "US Core AUDIT-C men positive at ≥4"),
    ],
)
def test_brief_intervention(gender: str, total: int, fires: bool, source: str) -> None:
    rules = fired([score("auditc", total, 1)], [patient(gender)])
    assert ("brief-intervention" in rules) is fires, source


# --- manage: outreach --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("contact_days_ago", "measure_days_ago", "fires", "source"),
    [
        (27, 5, False, "Bao 2016 follow-up within 4 weeks: 27 days is on time"),
        (28, 5, True, "AIMS Center registry flag: no contact ≥4 weeks"),
        (5, 27, False, "HEDIS DMS-E measurement cadence 4 weeks: 27 days on time"),
        (5, 28, True, "HEDIS DMS-E measurement every 4 weeks: 28 days overdue"),
    ],
)
def test_outreach(contact_days_ago: int, measure_days_ago: int, fires: bool, source: str) -> None:
    scores = [score("phq9", 15, 75), score("phq9", 12, measure_days_ago)]
    resources = [patient(), careplan(70), consent(72), contact(contact_days_ago)]
    assert ("outreach" in fired(scores, resources)) is fires, source


# --- adjust: psychiatric review / relapse prevention ---------------------------------------------
@pytest.mark.parametrize(
    ("weeks", "baseline", "latest", "fires", "source"),
    [
        (7, 16, 16, False, "Bao 2016 review for non-responders from week 8: week 7 is too early"),
        (8, 16, 16, True, "Bao 2016 not responding by week 8 → psychiatric consultation"),
        (12, 16, 16, True, "Bao 2016 weeks 8–12 (IMPACT: not better at 10–12 weeks)"),
        (9, 16, 9, True, "NCQA DRR-E response is ≥50%: 43.75% is not"),
        (9, 16, 8, False, "NCQA DRR-E response: 50% drop from baseline"),
        (9, 27, 14, True, "NCQA DRR-E 48.1% < 50%"),
        (9, 14, 4, False, "NCQA DRR-E remission (<5) is not on the review list"),
    ],
)
def test_psychiatric_review(
    weeks: int, baseline: int, latest: int, fires: bool, source: str
) -> None:
    start = weeks * 7
    scores = [score("phq9", baseline, start + 2), score("phq9", latest, 3)]
    resources = [patient(), careplan(start), consent(start + 1), contact(3)]
    assert ("psychiatric-review" in fired(scores, resources)) is fires, source


@pytest.mark.parametrize(
    ("improvement", "fires", "source"),
    [(49.0, True, "DRR-E: 49% is not a response"), (50.0, False, "DRR-E: ≥50% is a response")],
)
def test_psychiatric_review_improvement_boundary(
    improvement: float, fires: bool, source: str
) -> None:
    # PHQ-9 totals cannot give exactly 49%/50% of a common baseline; set the fact directly.
    scores = [score("phq9", 20, 60), score("phq9", 10, 3)]
    tl = timeline(scores, [patient(), careplan(58), contact(3)])
    tl.facts["target"]["improvementPercent"] = improvement
    rules = {w.rule for w in apply(protocol(), tl, plan()).writes}
    assert ("psychiatric-review" in rules) is fires, source


def test_review_period_is_part_of_the_identifier() -> None:
    # Bao 2016 weeks 8–12 is one review window; week 13 starts the next.
    def ident(weeks: int) -> str:
        scores = [score("phq9", 16, weeks * 7 + 2), score("phq9", 16, 3)]
        resources = [patient(), careplan(weeks * 7), contact(3)]
        return fired(scores, resources)["psychiatric-review"][0].identifier

    assert ident(8) == ident(12) == "psychiatric-review:CarePlan/cp1:weeks-8-12"
    assert ident(13) == "psychiatric-review:CarePlan/cp1:weeks-13-17"


@pytest.mark.parametrize(
    ("instrument", "latest", "fires", "source"),
    [
        ("phq9", 4, True, "NCQA DRR-E remission: PHQ-9 < 5"),
        ("phq9", 5, False, "NCQA DRR-E remission is < 5: 5 is not"),
        ("gad7", 4, True, "NCQA DRR-E the same < 5 logic for GAD-7 [M]"),
    ],
)
def test_relapse_prevention(instrument: str, latest: int, fires: bool, source: str) -> None:
    scores = [score(instrument, 14, 40), score(instrument, latest, 3)]
    resources = [patient(), careplan(38), contact(3)]
    assert ("relapse-prevention" in fired(scores, resources)) is fires, source
