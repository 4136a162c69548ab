"""Feedback Tasks on the practice plan's cadence (bhi_fhir.workflow.feedback).

The cadences are practice choices named in the practice plan's ``[feedback]`` (examples/
practice-plan.toml: patient survey at enrollment + 8 weeks, the start of the treat-to-target
review window of Bao 2016, and at completion of care; offered for 28 days; staff survey each
quarter), as the AMA's BHI workflow design asks a practice to plan patient and staff feedback
(https://www.ama-assn.org/delivering-care/public-health/designing-workflow-behavioral-health-integration).
Every date edge is tested on both sides.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.practice_plan import Feedback
from bhi_fhir.workflow.feedback import (
    PATIENT_SURVEY,
    STAFF_SURVEY,
    is_staff_feedback,
    patient_surveys_due,
    staff_feedback,
    staff_period,
)
from bhi_fhir.workflow.plan import to_transaction_bundle

from .helpers import PATIENT, ROOT, careplan, fired, patient, persist, plan

AMA = "AMA BHI workflow design (patient and staff feedback); practice plan [feedback]"
BAO = "Bao 2016 review window from week 8; practice plan feedback.patient_after_enrollment_weeks"
DECEASED = "FHIR R4 Patient.deceased[x]; Medicare pays no services after death"
INACTIVE = "FHIR R4 Patient.active / Patient.link replaced-by"

ENROLLED = "2026-09-01"  # + 8 weeks = 2026-10-27; offered until 2026-11-24 (28 days)
COMPLETED = "2026-11-01"  # offered until 2026-11-29


def _facts(
    today: str,
    *,
    enrolled: str | None = ENROLLED,
    completed: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    facts: dict[str, Any] = {"patient": PATIENT, "today": today, "enrolled": enrolled is not None}
    if enrolled is not None:
        facts["enrollment"] = {"carePlan": "CarePlan/cp1", "source": "CarePlan/cp1/_history/1",
                               "start": enrolled}
    if completed is not None:
        facts["careCompleted"] = {"carePlan": "CarePlan/cp0", "source": "CarePlan/cp0/_history/3",
                                  "end": completed}
    return facts | extra


@pytest.mark.parametrize(
    ("facts", "cadence", "expected"),
    [
        # Enrollment + 8 weeks (BAO): due 2026-10-27, offered to 2026-11-24 inclusive.
        pytest.param(_facts("2026-10-26"), Feedback(), [], id=f"week-8-day-before-due: {BAO}"),
        pytest.param(_facts("2026-10-27"), Feedback(), [("week-8", "2026-10-27")],
                     id=f"week-8-on-the-due-day: {BAO}"),
        pytest.param(_facts("2026-11-24"), Feedback(), [("week-8", "2026-10-27")],
                     id=f"week-8-last-day-offered: {AMA}"),
        pytest.param(_facts("2026-11-25"), Feedback(), [], id=f"week-8-a-day-too-late: {AMA}"),
        pytest.param(_facts("2026-11-02"), Feedback(patient_after_enrollment_weeks=9), [],
                     id=f"week-9-plan-day-before-due: {AMA}"),
        pytest.param(_facts("2026-11-03"), Feedback(patient_after_enrollment_weeks=9),
                     [("week-9", "2026-11-03")], id=f"week-9-plan-on-the-due-day: {AMA}"),
        pytest.param(_facts("2026-10-27"), Feedback(patient_after_enrollment_weeks=None), [],
                     id=f"enrollment-survey-off: {AMA}"),
        pytest.param(_facts("2026-10-27", enrolled=None), Feedback(), [],
                     id=f"not-enrolled: {AMA}"),
        pytest.param(_facts("2026-10-27"), Feedback(patient_offer_within_days=0),
                     [("week-8", "2026-10-27")], id=f"offer-window-0-due-day-only: {AMA}"),
        pytest.param(_facts("2026-10-28"), Feedback(patient_offer_within_days=0), [],
                     id=f"offer-window-0-day-after: {AMA}"),
        # Completion of care: the BHI CarePlan's period.end, offered to 2026-11-29 inclusive.
        pytest.param(_facts("2026-10-31", enrolled=None, completed=COMPLETED), Feedback(), [],
                     id=f"completion-day-before-end: {AMA}"),
        pytest.param(_facts("2026-11-01", enrolled=None, completed=COMPLETED), Feedback(),
                     [("completion", "2026-11-01")], id=f"completion-on-the-end-day: {AMA}"),
        pytest.param(_facts("2026-11-29", enrolled=None, completed=COMPLETED), Feedback(),
                     [("completion", "2026-11-01")], id=f"completion-last-day-offered: {AMA}"),
        pytest.param(_facts("2026-11-30", enrolled=None, completed=COMPLETED), Feedback(), [],
                     id=f"completion-a-day-too-late: {AMA}"),
        pytest.param(_facts("2026-11-01", enrolled=None, completed=COMPLETED),
                     Feedback(patient_at_completion=False), [], id=f"completion-survey-off: {AMA}"),
        pytest.param(_facts("2026-11-20", completed=COMPLETED), Feedback(),
                     [("week-8", "2026-10-27"), ("completion", "2026-11-01")],
                     id=f"re-enrolled-after-completion-both-due: {AMA}"),
        # Who is asked: a living patient on an active record only.
        pytest.param(_facts("2026-10-27", deceased={"date": "2026-10-27"}), Feedback(), [],
                     id=f"deceased-on-the-due-day: {DECEASED}"),
        pytest.param(_facts("2026-10-27", deceased={"date": "2026-10-28"}), Feedback(),
                     [("week-8", "2026-10-27")], id=f"death-recorded-after-today: {DECEASED}"),
        pytest.param(_facts("2026-10-27", deceased={}), Feedback(), [],
                     id=f"deceased-boolean: {DECEASED}"),
        pytest.param(_facts("2026-10-27", inactive={"replacedBy": "Patient/p2"}), Feedback(), [],
                     id=f"replaced-record: {INACTIVE}"),
    ],
)
def test_patient_survey_cadence(
    facts: dict[str, Any], cadence: Feedback, expected: list[tuple[str, str]]
) -> None:
    today = date.fromisoformat(facts["today"])
    found = patient_surveys_due(facts, cadence, today)
    assert [(d.occasion, d.due.isoformat()) for d in found] == expected


@pytest.mark.parametrize(
    ("today", "every", "expected"),
    [
        pytest.param("2026-03-31", 3, ("2026-01-01", "2026-03-31", "2026-01/P3M"),
                     id=f"quarter-1-last-day: {AMA}"),
        pytest.param("2026-04-01", 3, ("2026-04-01", "2026-06-30", "2026-04/P3M"),
                     id=f"quarter-2-first-day: {AMA}"),
        pytest.param("2026-12-31", 3, ("2026-10-01", "2026-12-31", "2026-10/P3M"),
                     id=f"quarter-4-last-day: {AMA}"),
        pytest.param("2027-01-01", 3, ("2027-01-01", "2027-03-31", "2027-01/P3M"),
                     id=f"next-year-first-day: {AMA}"),
        pytest.param("2026-06-30", 6, ("2026-01-01", "2026-06-30", "2026-01/P6M"),
                     id=f"half-year-last-day: {AMA}"),
        pytest.param("2026-07-01", 6, ("2026-07-01", "2026-12-31", "2026-07/P6M"),
                     id=f"half-year-first-day: {AMA}"),
        pytest.param("2026-02-28", 1, ("2026-02-01", "2026-02-28", "2026-02/P1M"),
                     id=f"monthly: {AMA}"),
        pytest.param("2026-06-15", 12, ("2026-01-01", "2026-12-31", "2026-01/P12M"),
                     id=f"yearly: {AMA}"),
        pytest.param("2026-06-15", 0, None, id=f"off: {AMA}"),
    ],
)
def test_staff_survey_period(today: str, every: int, expected: tuple[str, str, str] | None) -> None:
    period = staff_period(date.fromisoformat(today), every)
    found = (period.start.isoformat(), period.end.isoformat(), period.label) if period else None
    assert found == expected


# --- Through the engine: the Task, its identifier, and re-runs.

def _enrolled_8_weeks_ago() -> list[dict[str, Any]]:
    return [patient(), careplan(start_days_ago=8 * 7)]  # due today (helpers.TODAY)


def test_patient_survey_task_for_the_care_manager_based_on_the_careplan() -> None:
    (task,) = fired([], _enrolled_8_weeks_ago())["patient-feedback"]
    assert task.identifier == "patient-feedback:CarePlan/cp1:week-8"
    assert task.method == "create" and task.sources == ("CarePlan/cp1/_history/1",)
    resource = task.resource
    assert resource["for"] == {"reference": PATIENT}
    assert resource["basedOn"] == [{"reference": "CarePlan/cp1"}]
    assert resource["owner"]["reference"] in {m.reference for m in plan().team.care_managers}
    assert resource["input"] == [{"type": {"text": "questionnaire"},
                                  "valueCanonical": PATIENT_SURVEY}]
    assert resource["restriction"]["period"] == {"start": "2026-11-26", "end": "2026-12-24"}


@pytest.mark.parametrize("status", ["requested", "in-progress", "completed", "cancelled"])
def test_a_survey_task_already_there_is_never_created_again(status: str) -> None:
    (task,) = fired([], _enrolled_8_weeks_ago())["patient-feedback"]
    (stored,) = persist([task])
    stored["status"] = status
    assert "patient-feedback" not in fired([], [*_enrolled_8_weeks_ago(), stored])


def test_completion_of_care_asks_once() -> None:
    done = careplan(start_days_ago=200, ident="cp0", status="completed")
    done["period"]["end"] = "2026-11-20"
    (task,) = fired([], [patient(), done])["patient-feedback"]
    assert task.identifier == "patient-feedback:CarePlan/cp0:completion"
    assert "completion of care" in task.resource["description"]


def test_staff_tasks_one_per_member_per_quarter_without_a_patient() -> None:
    first = staff_feedback(plan(), date(2026, 11, 26))
    members = [m.reference for m in plan().feedback_staff()]
    assert [w.resource["owner"]["reference"] for w in first.writes] == members
    assert {w.identifier for w in first.writes} == {
        f"staff-feedback:{m}:2026-10/P3M" for m in members}
    for write in first.writes:
        assert "for" not in write.resource and is_staff_feedback(write.resource)
        assert write.resource["input"][0]["valueCanonical"] == STAFF_SURVEY
    bundle = to_transaction_bundle(first)
    assert all(e["request"]["ifNoneExist"].startswith("identifier=") and "patient=" not in
               e["request"]["ifNoneExist"] for e in bundle["entry"])
    again = staff_feedback(plan(), date(2026, 12, 31), {w.identifier: w.resource
                                                        for w in first.writes})
    assert again.writes == [] and len(again.skipped) == len(members)
    next_quarter = staff_feedback(plan(), date(2027, 1, 1), {w.identifier: w.resource
                                                             for w in first.writes})
    assert len(next_quarter.writes) == len(members)


def test_apply_with_staff_feedback_asks_each_member_once_per_quarter(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bhi_fhir.cli import app

    clinic, plan_file = ROOT / "examples" / "clinic", ROOT / "examples" / "practice-plan.toml"
    out = tmp_path / "bundle.json"
    args = ["apply", str(clinic), "--plan", str(plan_file), "--today", "2026-11-26",
            "--format", "json", "--staff-feedback"]
    first = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert first.exit_code == 0, first.output
    staff = [e["resource"] for e in json.loads(out.read_text())["entry"]
             if is_staff_feedback(e["resource"])]
    assert sorted(t["owner"]["reference"] for t in staff) == sorted(
        m.reference for m in plan().feedback_staff())
    # the next run reads the first run's Bundle back: nothing is asked twice
    second = CliRunner().invoke(app, [*args[:2], str(out), *args[2:],
                                      "--out", str(tmp_path / "again.json")])
    assert second.exit_code == 0, second.output
    again = json.loads((tmp_path / "again.json").read_text())["entry"]
    assert not [e for e in again if is_staff_feedback(e["resource"])]
    # without the option, no staff Task (a run over some patients is not the practice's)
    without = CliRunner().invoke(app, [*args[:-1], "--out", str(tmp_path / "plain.json")])
    assert without.exit_code == 0, without.output
    plain = json.loads((tmp_path / "plain.json").read_text())["entry"]
    assert not [e for e in plain if is_staff_feedback(e["resource"])]
