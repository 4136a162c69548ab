"""The practice plan: validated TOML, errors that name the key path and the problem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.practice_plan import PracticePlanError, load_practice_plan, parse_practice_plan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "practice-plan.toml"


def _data() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PracticePlanError) as info:
        parse_practice_plan(data)
    return info.value.problems


def test_example_loads() -> None:
    plan = load_practice_plan(EXAMPLE)
    assert len(plan.team.care_managers) == 2
    assert set(plan.crisis.directory) >= {
        "988", "mobile-crisis", "crisis-stabilization", "emergency-department", "inpatient",
    }  # fmt: skip


def test_defaults_match_bhi_domain() -> None:
    data = _data()
    for section in ("screening", "handoffs", "treat_to_target"):
        data.pop(section)
    plan = parse_practice_plan(data)
    assert plan.screening.phq9_positive == 10  # Kroenke 2001
    assert plan.screening.phq2_positive == 3  # Arroll 2010
    assert plan.screening.gad7_positive == 10  # Spitzer 2006
    assert (plan.screening.auditc_positive_male, plan.screening.auditc_positive_female) == (4, 3)
    assert plan.treat_to_target.response_drop_percent == 50  # NCQA DRR-E
    assert plan.treat_to_target.remission_below == 5  # NCQA DRR-E
    assert (plan.treat_to_target.review_window_start_week,
            plan.treat_to_target.review_window_end_week) == (8, 12)  # Bao 2016  # fmt: skip
    assert plan.handoffs.contact_interval_days == 28  # Bao 2016 / AIMS Center
    # FHIR request-priority; design proposal
    assert plan.crisis.priorities == {"high": "stat", "moderate": "urgent"}
    assert plan.crisis.assessment_priority == "asap"  # SAFE-T same-day assessment


def test_unknown_level_names_the_key() -> None:
    data = _data()
    data["crisis"]["levels"]["high"] = "icu"
    (problem,) = _problems(data)
    assert problem.startswith("crisis.levels.high: unknown level 'icu'")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["team"].pop("psychiatric_consultant"),
         "team.psychiatric_consultant: required key is missing"),
        (lambda d: d["team"]["care_managers"][1].update(capacity=0),
         "team.care_managers.1.capacity: Input should be greater than or equal to 1"),
        (lambda d: d["crisis"]["priorities"].update(high="soon"),
         "crisis.priorities.high: Input should be 'routine', 'urgent', 'asap' or 'stat', "
         "got 'soon'"),
        (lambda d: d["crisis"]["levels"].update(severe="inpatient"),
         "crisis.levels.severe: unknown risk 'severe'"),
        (lambda d: d["crisis"]["priorities"].pop("moderate"),
         "crisis.priorities.moderate: missing (crisis.levels maps 'moderate')"),
        (lambda d: d["team"]["billing_practitioner"].update(reference="Dr Lee"),
         "team.billing_practitioner: 'Dr Lee' is not a reference"),
        (lambda d: d["treat_to_target"].update(review_window_end_week=6),
         "treat_to_target.review_window_end_week: 6 is before review_window_start_week 8"),
        (lambda d: d["handoffs"].update(caseload_review_weekday="someday"),
         "handoffs.caseload_review_weekday: Input should be"),
        (lambda d: d["screening"].update(lookback_days=-1),
         "screening.lookback_days: Input should be greater than or equal to 0"),
        (lambda d: d["screening"].update(auditc_q1_only="ignore"),
         "screening.auditc_q1_only: Input should be 'note' or 'skip', got 'ignore'"),
        (lambda d: d["screening"].update(stale_screen_at_enrollment="wait"),
         "screening.stale_screen_at_enrollment: Input should be 'rescreen' or 'enroll'"),
        (lambda d: d["records"].update(deceased_careplan_status="closed"),
         "records.deceased_careplan_status: Input should be 'revoked', 'completed' or 'leave'"),
    ],
)
def test_errors_name_the_key_and_the_problem(mutate: Any, expected: str) -> None:
    data = _data()
    mutate(data)
    problems = _problems(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "plan.toml"
    bad.write_text("practice = \n")
    with pytest.raises(PracticePlanError, match="not valid TOML"):
        load_practice_plan(bad)
    with pytest.raises(PracticePlanError, match="cannot read file"):
        load_practice_plan(tmp_path / "missing.toml")


def test_fhirpath_view_joins_routes_with_the_directory() -> None:
    view = load_practice_plan(EXAMPLE).fhirpath_view()
    high = next(r for r in view["crisis"]["routes"] if r["risk"] == "high")
    assert high == {
        "risk": "high",
        "level": "emergency-department",
        "priority": "stat",
        "performer": "Organization/riverside-general-ed",
        "name": "Riverside General Emergency Department",
        "phone": "+1-555-0102",
    }


def test_record_and_stale_screen_defaults() -> None:
    # A plan without [records] or the new screening key gets the documented defaults:
    # re-screen a stale positive screen before enrollment (AIMS Center CoCM workflow) and revoke
    # a deceased patient's BHI CarePlan (FHIR R4 request-status "revoked").
    data = _data()
    data.pop("records")
    data["screening"].pop("stale_screen_at_enrollment")
    plan = parse_practice_plan(data)
    assert plan.records.deceased_careplan_status == "revoked"
    assert plan.screening.stale_screen_at_enrollment == "rescreen"
    view = plan.fhirpath_view()
    assert view["records"]["deceased_careplan_status"] == "revoked"


@pytest.mark.parametrize(
    ("zone", "accepted"),
    [
        ("UTC", True),
        ("America/New_York", True),
        ("America/new_york", False),  # IANA names are case-sensitive files
        ("Mars/Base", False),
        ("America", False),  # a folder of the database, not a zone
        ("../etc/passwd", False),
        ("", False),
    ],
    ids=["utc", "iana", "wrong-case", "unknown", "folder", "path", "empty"],
)
def test_billing_timezone_is_checked_at_load(zone: str, accepted: bool) -> None:
    data = _data()
    data["billing"]["timezone"] = zone
    if accepted:
        assert parse_practice_plan(data).billing.timezone == zone
    else:
        assert any(p.startswith("billing.timezone: unknown time zone") for p in _problems(data))


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'practice = "\xff"\n', "not UTF-8 text"),
        (("a = " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
        (("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n").encode(), "nested too deeply"),
    ],
    ids=["not-utf8", "deep-arrays", "deep-inline-tables"],
)
def test_an_unreadable_plan_file_is_one_plan_error(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "plan.toml"
    path.write_bytes(content)
    with pytest.raises(PracticePlanError) as info:
        load_practice_plan(path)
    assert says in str(info.value)
