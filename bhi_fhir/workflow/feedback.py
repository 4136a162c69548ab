"""Feedback Tasks on the practice plan's cadence (``[feedback]``). Pure.

Two surveys (profiles/questionnaires/feedback), asked by a Task each time one falls due:

* the **patient experience survey** (:data:`PATIENT_SURVEY`), for a patient
  ``feedback.patient_after_enrollment_weeks`` after enrollment (default 8: the start of the
  treat-to-target review window, Bao 2016) and when care is completed (their BHI CarePlan
  completed, ``feedback.patient_at_completion``). Due on that day, offered until
  ``feedback.patient_offer_within_days`` later: a first run over old enrollments and
  completions asks no one about care long past. The Task is the care manager's (they offer it
  in the portal or record the answers on a call), ``basedOn`` the BHI CarePlan. Never for a
  deceased patient nor an inactive record (FHIR R4 Patient.deceased[x], Patient.active/link).
* the **staff workflow survey** (:data:`STAFF_SURVEY`), for each member of
  :meth:`~bhi_fhir.practice_plan.PracticePlan.feedback_staff` once per calendar-aligned period
  of ``feedback.staff_every_months`` months (default 3: quarterly, January, April, July,
  October). A practice-level Task: no patient, owned by the staff member.

Identifiers are deterministic (rule + source + occasion/period), as for every generated
resource (``bhi_fhir.workflow.engine``): ``patient-feedback:<CarePlan>:week-<n>``,
``patient-feedback:<CarePlan>:completion`` and ``staff-feedback:<member>:<YYYY-MM>/P<n>M``
(the period as an ISO 8601 start/duration interval). A Task already generated (whatever its
status) is never created again nor reopened, so re-runs never duplicate.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bhi_fhir.codes import BHI_ACTIVITY, BHI_BASE, BHI_IDENTIFIER, claims, task_profile
from bhi_fhir.fhirjson import day
from bhi_fhir.practice_plan import Feedback, PracticePlan, TeamMember
from bhi_fhir.timeline import TERMINAL_STATUSES, Timeline, full_url_for
from bhi_fhir.workflow.plan import Plan, PlannedWrite, Skipped
from bhi_fhir.workflow.validate import validate_resource

__all__ = [
    "PATIENT_RULE",
    "PATIENT_SURVEY",
    "PRACTICE",
    "STAFF_RULE",
    "STAFF_SURVEY",
    "PatientSurveyDue",
    "StaffPeriod",
    "is_staff_feedback",
    "patient_feedback",
    "patient_surveys_due",
    "staff_feedback",
    "staff_period",
]

PATIENT_SURVEY = f"{BHI_BASE}/Questionnaire/bhi-patient-experience"
STAFF_SURVEY = f"{BHI_BASE}/Questionnaire/bhi-staff-workflow"
PATIENT_RULE = "patient-feedback"
STAFF_RULE = "staff-feedback"
PRACTICE = "practice"  # the Plan.patient label of the practice-level (staff) writes
_XHTML = "http://www.w3.org/1999/xhtml"


@dataclass(frozen=True, slots=True)
class PatientSurveyDue:
    """One occasion to offer the patient experience survey."""

    occasion: str  # "week-8" (after enrollment) or "completion"
    due: date  # the day it falls due
    until: date  # the last day it is still offered
    care_plan: str  # the BHI CarePlan the occasion belongs to
    source: str  # its versioned reference (Provenance)


@dataclass(frozen=True, slots=True)
class StaffPeriod:
    """One calendar-aligned period of the staff survey cadence."""

    start: date
    end: date  # its last day
    label: str  # "2026-10/P3M"


def _living_active(facts: Mapping[str, Any], today: date) -> bool:
    """Not deceased on or before ``today`` (a deceasedBoolean without date counts), not an
    inactive or replaced record."""
    if facts.get("inactive"):
        return False
    death = facts.get("deceased")
    if isinstance(death, Mapping):
        when = day(death.get("date"))
        if when is None or when <= today:
            return False
    return True


def patient_surveys_due(
    facts: Mapping[str, Any], cadence: Feedback, today: date
) -> list[PatientSurveyDue]:
    """The patient experience surveys ``today`` falls in the offer window of: due on or before
    today and no more than ``cadence.patient_offer_within_days`` days ago."""
    if not _living_active(facts, today):
        return []
    within = timedelta(days=cadence.patient_offer_within_days)
    found: list[PatientSurveyDue] = []
    weeks = cadence.patient_after_enrollment_weeks
    enrollment = facts.get("enrollment")
    if weeks is not None and facts.get("enrolled") and isinstance(enrollment, Mapping):
        start = day(enrollment.get("start"))
        if start is not None:
            due = start + timedelta(weeks=weeks)
            if due <= today <= due + within:
                found.append(PatientSurveyDue(
                    f"week-{weeks}", due, due + within,
                    str(enrollment.get("carePlan")), str(enrollment.get("source")),
                ))
    completed = facts.get("careCompleted")
    if cadence.patient_at_completion and isinstance(completed, Mapping):
        end = day(completed.get("end"))
        if end is not None and end <= today <= end + within:
            found.append(PatientSurveyDue(
                "completion", end, end + within,
                str(completed.get("carePlan")), str(completed.get("source")),
            ))
    return found


def staff_period(today: date, every_months: int) -> StaffPeriod | None:
    """The period ``today`` is in: ``every_months``-month blocks from January (3: quarters);
    None when the staff survey is off (0)."""
    if every_months <= 0:
        return None
    first = (today.month - 1) // every_months * every_months + 1
    start = date(today.year, first, 1)
    after = first + every_months
    following = date(today.year + (after - 1) // 12, (after - 1) % 12 + 1, 1)
    return StaffPeriod(start, following - timedelta(days=1),
                       f"{start.year}-{first:02d}/P{every_months}M")


def _task(
    identifier: str,
    code: str,
    title: str,
    description: str,
    survey: str,
    owner: TeamMember,
    today: date,
    window: tuple[date, date],
) -> dict[str, Any]:
    body = "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in (title, description))
    return {
        "resourceType": "Task",
        "meta": claims(task_profile(code)),
        "identifier": [{"system": BHI_IDENTIFIER, "value": identifier}],
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": BHI_ACTIVITY, "code": code, "display": title}],
                 "text": title},
        "description": description,
        "authoredOn": today.isoformat(),
        "owner": {"reference": owner.reference, "display": owner.display},
        "restriction": {"period": {"start": window[0].isoformat(), "end": window[1].isoformat()}},
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": survey}],
        "text": {"status": "generated", "div": f'<div xmlns="{_XHTML}">{body}</div>'},
    }


def _settle(
    result: Plan,
    rule: str,
    identifier: str,
    resource: dict[str, Any],
    reason: str,
    sources: tuple[str, ...],
    existing: Mapping[str, Mapping[str, Any]],
    validate: bool,
) -> None:
    """Plan the create, or say why not: a Task with the identifier exists (asked already)."""
    found = existing.get(identifier)
    if found is not None:
        status = found.get("status")
        why = f"{status} (not reopened)" if status in TERMINAL_STATUSES else "already asked"
        result.skipped.append(Skipped(rule, identifier, why))
        return
    if validate:
        validate_resource(resource)
    result.writes.append(PlannedWrite(
        rule=rule, output=rule, identifier=identifier, method="create", resource=resource,
        reason=reason, sources=sources, full_url=full_url_for(identifier),
    ))


def patient_feedback(
    timeline: Timeline, plan: PracticePlan, owner: TeamMember, result: Plan, *,
    validate: bool = True,
) -> None:
    """Add the patient experience survey Tasks due for ``timeline``'s patient to ``result``,
    owned by ``owner`` (the patient's care manager)."""
    today = day(timeline.facts.get("today"))
    if today is None:
        return
    for due in patient_surveys_due(timeline.facts, plan.feedback, today):
        identifier = f"{PATIENT_RULE}:{due.care_plan}:{due.occasion}"
        when = ("at completion of care" if due.occasion == "completion"
                else f"{due.occasion.removeprefix('week-')} weeks after enrollment")
        resource = _task(
            identifier, PATIENT_RULE, "Patient experience survey",
            f"Offer the patient experience survey {when} (in the portal, or record the "
            f"answers on a call); offered until {due.until.isoformat()}.",
            PATIENT_SURVEY, owner, today, (due.due, due.until),
        )
        resource["for"] = {"reference": timeline.patient}
        resource["basedOn"] = [{"reference": due.care_plan}]
        reason = f"patient experience survey due {due.due.isoformat()} ({when})"
        _settle(result, PATIENT_RULE, identifier, resource, reason, (due.source,),
                timeline.existing, validate)


def is_staff_feedback(resource: Mapping[str, Any]) -> bool:
    """A staff-feedback Task bhi-fhir generated (it names no patient)."""
    return resource.get("resourceType") == "Task" and any(
        isinstance(i, Mapping) and i.get("system") == BHI_IDENTIFIER
        and str(i.get("value", "")).startswith(f"{STAFF_RULE}:")
        for i in resource.get("identifier") or []
    )


def staff_feedback(
    plan: PracticePlan,
    today: date,
    existing: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    validate: bool = True,
) -> Plan:
    """The staff workflow survey Tasks of the period ``today`` is in, one per member of
    :meth:`~bhi_fhir.practice_plan.PracticePlan.feedback_staff`; ``existing`` are the
    staff-feedback Tasks already generated, by identifier value."""
    result = Plan(patient=PRACTICE)
    period = staff_period(today, plan.feedback.staff_every_months)
    if period is None:
        return result
    for member in plan.feedback_staff():
        identifier = f"{STAFF_RULE}:{member.reference}:{period.label}"
        resource = _task(
            identifier, STAFF_RULE, "Staff workflow survey",
            f"Answer the BHI staff workflow survey for {period.start.isoformat()} to "
            f"{period.end.isoformat()} (hand-offs, caseload review, crisis protocol, tools).",
            STAFF_SURVEY, member, today, (period.start, period.end),
        )
        reason = f"staff workflow survey for {period.label}"
        _settle(result, STAFF_RULE, identifier, resource, reason, (), existing or {}, validate)
    return result
