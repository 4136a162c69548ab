"""What the pages show, computed from a patient's resources: pure functions, no I/O.

Scores come from ``bhi_fhir.instruments``, facts (weeks in treatment, targets, contacts, crises)
from ``bhi_fhir.timeline``, minutes and codes from ``bhi_fhir.billing``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.timeline import TERMINAL_STATUSES, Timeline, TimelineSettings, build_timeline

logger = logging.getLogger(__name__)

Resource = dict[str, Any]

# Severity bands drawn behind the chart (bhi-domain.md §1.2 PHQ-9, §1.5 GAD-7).
BANDS = {
    "phq9": [
        (0, 4, "minimal"),
        (5, 9, "mild"),
        (10, 14, "moderate"),
        (15, 19, "moderately severe"),
        (20, 27, "severe"),
    ],
    "gad7": [(0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")],
}
NO_CONTACT_DAYS = 28  # registry flag "no contact in 4 weeks"


def patient_name(patient: Resource) -> str:
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(str(p) for p in parts if p)
        if text:
            return text
    return f"Patient {patient.get('id', '')}"


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return ""


def _ref_label(ref: Any) -> str:
    if not isinstance(ref, dict):
        return ""
    return str(ref.get("display") or ref.get("reference") or "")


def timeline_settings_for(plan: PracticePlan | None) -> TimelineSettings:
    if plan is None:
        return TimelineSettings()
    try:
        from bhi_fhir.workflow import timeline_settings

        return timeline_settings(plan)
    except ImportError:  # the workflow engine not installed yet
        return TimelineSettings()


def _unscored(resource: Any, exc: Exception) -> None:
    # No PHI in logs: the response's id and the error type only.
    logger.warning("cannot score QuestionnaireResponse/%s (%s)", resource.get("id"),
                   type(exc).__name__)


def timeline_of(resources: list[Resource], today: date, plan: PracticePlan | None) -> Timeline:
    patient = resources[0]
    sex = sex_of(patient) if patient.get("resourceType") == "Patient" else None
    # The plan's cut points, as apply and sync score with: the page shows what they act on.
    cut_points = plan.screening.cut_points if plan is not None else None
    # Responses, screening Observations and reports alike: the screens apply and sync see.
    # An entered-in-error response is scored too, so the Observations derived from it are
    # known as its own (not a screen again); the timeline counts it for nothing.
    scores = screening_scores(resources, patient_sex=sex, cut_points=cut_points,
                              on_error=_unscored)
    return build_timeline(
        f"Patient/{patient['id']}", resources, scores, today, timeline_settings_for(plan)
    )


@dataclass
class PatientView:
    id: str
    name: str
    gender: str
    birth_date: str
    facts: dict[str, Any]
    series: dict[str, list[dict[str, Any]]]
    targets: dict[str, dict[str, Any]]
    crises: list[dict[str, Any]]
    careplan: dict[str, Any] | None
    tasks: list[dict[str, Any]]
    referrals: list[dict[str, Any]]
    billing: dict[str, Any]
    resources_read: int
    bands: dict[str, list[tuple[int, int, str]]] = field(default_factory=lambda: BANDS)


def _task_row(task: Resource) -> dict[str, Any]:
    return {
        "id": task.get("id"),
        "version": (task.get("meta") or {}).get("versionId"),
        "what": task.get("description") or _text(task.get("code")) or "Task",
        "status": task.get("status", ""),
        "priority": task.get("priority", "routine"),
        "owner": _ref_label(task.get("owner")) or "unassigned",
        "due": ((task.get("restriction") or {}).get("period") or {}).get("end", ""),
        "authored": task.get("authoredOn", ""),
    }


def _referral_row(request: Resource) -> dict[str, Any]:
    performers = ", ".join(_ref_label(p) for p in request.get("performer") or [])
    return {
        "id": request.get("id"),
        "what": _text(request.get("code")) or "Referral",
        "status": request.get("status", ""),
        "priority": request.get("priority", "routine"),
        "owner": performers or "—",
        "authored": request.get("authoredOn", ""),
    }


def _careplan(resources: list[Resource], facts: dict[str, Any]) -> dict[str, Any] | None:
    ref = (facts.get("enrollment") or {}).get("carePlan")
    for r in resources:
        if r.get("resourceType") == "CarePlan" and f"CarePlan/{r.get('id')}" == ref:
            return {
                "id": r.get("id"),
                "title": r.get("title") or "BHI care plan",
                "status": r.get("status"),
                "start": (r.get("period") or {}).get("start", ""),
                "contributors": [_ref_label(c) for c in r.get("contributor") or []],
                "activities": [
                    _text((a.get("detail") or {}).get("code")) or _ref_label(a.get("reference"))
                    for a in r.get("activity") or []
                ],
                "description": r.get("description", ""),
            }
    return None


def billing_summary(
    resources: list[Resource], today: date, plan: PracticePlan | None
) -> dict[str, Any]:
    """Care-management minutes this month and the codes they reach (bhi_fhir.billing)."""
    try:
        from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
        from bhi_fhir.billing.rules import BillingRules

        rules = BillingRules(
            program="bhi" if plan is not None and plan.billing.program == "general-bhi" else "cocm",
            billing_practitioner=plan.team.billing_practitioner.reference if plan else None,
        )
        records = group_by_patient(resources)
        patient_ref = f"Patient/{resources[0]['id']}"
        record = records.get(patient_ref)
        if record is None:
            return {"minutes": 0, "counted": 0, "codes": [], "reasons": [], "available": True}
        months, _rejected = close_month(record, Month(today.year, today.month), rules)
    except Exception as exc:  # billing rules still landing, or data it cannot read
        logger.warning("billing summary unavailable: %s", type(exc).__name__)
        return {"minutes": None, "codes": [], "reasons": [], "available": False}
    return {
        "minutes": sum(m.recorded_minutes for m in months),  # recorded this month
        "counted": sum(m.minutes for m in months),  # after consent, discharge, exclusions
        "codes": [str(c) for m in months for c in m.codes],
        "reasons": [r.text for m in months for r in m.reasons],
        "available": True,
    }


def patient_view(resources: list[Resource], today: date, plan: PracticePlan | None) -> PatientView:
    patient = resources[0]
    timeline = timeline_of(resources, today, plan)
    facts = timeline.facts
    series: dict[str, list[dict[str, Any]]] = {"phq9": [], "gad7": []}
    for score in facts.get("scores") or []:
        if score.get("instrument") in series and score.get("total") is not None:
            series[score["instrument"]].append(
                {
                    "date": score.get("date"),
                    "total": score["total"],
                    "severity": score.get("severity"),
                }
            )
    tasks = [
        _task_row(r)
        for r in resources
        if r.get("resourceType") == "Task" and r.get("status") not in TERMINAL_STATUSES
    ]
    tasks.sort(key=lambda t: (t["priority"] not in ("stat", "asap", "urgent"), t["authored"]))
    referrals = [
        _referral_row(r)
        for r in resources
        if r.get("resourceType") == "ServiceRequest" and r.get("status") not in TERMINAL_STATUSES
    ]
    return PatientView(
        id=str(patient.get("id")),
        name=patient_name(patient),
        gender=str(patient.get("gender", "")),
        birth_date=str(patient.get("birthDate", "")),
        facts=facts,
        series=series,
        targets=facts.get("targets") or {},
        crises=facts.get("crises") or [],
        careplan=_careplan(resources, facts),
        tasks=tasks,
        referrals=referrals,
        billing=billing_summary(resources, today, plan),
        resources_read=len(resources),
    )


def record_status(facts: dict[str, Any]) -> str:
    """"deceased" (the death is on or before today; FHIR R4 Patient.deceased[x]), "inactive
    record" (Patient.active false or replaced-by), or "" for a patient in the caseload.

    A deceased or inactive patient is shown apart from the caseload, never with work flags
    such as "no contact 4 weeks": the protocol gives them no new work (bhi-domain.md §6).
    """
    death = facts.get("deceased")
    if isinstance(death, dict) and str(death.get("date") or "") <= str(facts.get("today")):
        return "deceased"
    if "inactive" in facts:
        return "inactive record"
    return ""


def registry_row(
    resources: list[Resource], today: date, plan: PracticePlan | None
) -> dict[str, Any]:
    view = patient_view(resources, today, plan)
    facts = view.facts
    latest = facts.get("latest") or {}
    target = facts.get("target") or {}
    contacts = facts.get("contacts") or {}
    days_without = contacts.get("daysWithout")
    status = record_status(facts)
    flags: list[str] = []
    if status == "deceased":
        pass  # no work flags at all (see record_status)
    elif view.crises:
        flags.append("crisis")  # a crisis on an inactive record is still shown (§3)
    if status != "deceased" and any(f.get("suicideItemUnknown") for f in latest.values()):
        flags.append("suicide item unknown")  # a total without item 9: ask, never "no risk"
    if not status and isinstance(days_without, int) and days_without >= NO_CONTACT_DAYS:
        flags.append("no contact 4 weeks")
    improving = target.get("response") or target.get("remission")
    if not status and facts.get("reviewPeriod") and not improving:
        flags.append("not improving")
    return {
        "status": status,
        "id": view.id,
        "name": view.name,
        "phq9": (latest.get("phq9") or {}).get("total"),
        "gad7": (latest.get("gad7") or {}).get("total"),
        "change": target.get("improvementPercent"),
        "weeks": facts.get("weeksInTreatment"),
        "last_contact": contacts.get("last") or "",
        "flags": flags,
        "review": "not improving" in flags,
        "minutes": view.billing.get("minutes"),
    }
