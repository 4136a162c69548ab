"""A registry row from one patient's resources: pure, no I/O.

The one computation of the registry's figures. The live registry page (``smart_app``) and the
read model kept in the store (``bhi_fhir.registry.model``) both call :func:`registry_row`, so a
stored row is exactly what the live read would have shown for the same record and day.

Scores come from ``bhi_fhir.instruments``, facts (weeks in treatment, targets, contacts, crises)
from ``bhi_fhir.timeline``, minutes and codes from ``bhi_fhir.billing``.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from bhi_fhir.codes import MENTAL_HEALTH_CARE_PLAN, SNOMED
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import patient_of
from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.timeline import (
    OWN_ENROLLMENT,
    EnrollmentRule,
    Timeline,
    TimelineSettings,
    build_timeline,
    is_bhi_plan,
    is_enrollment,
)
from bhi_fhir.timeline.refs import has_code

__all__ = [
    "MALFORMED_FLAG",
    "NO_CONTACT_DAYS",
    "billing_summary",
    "enrolled_in",
    "malformed_row",
    "patient_name",
    "record_status",
    "registry_row",
    "timeline_of",
    "timeline_settings_for",
]

logger = logging.getLogger(__name__)


NO_CONTACT_DAYS = 28  # registry flag "no contact in 4 weeks"
MALFORMED_FLAG = "malformed record"  # the registry row of a patient whose record cannot be read


def patient_name(patient: Resource) -> str:
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(str(p) for p in parts if p)
        if text:
            return text
    return f"Patient {patient.get('id', '')}"


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


def billing_summary(
    resources: list[Resource], today: date, plan: PracticePlan | None
) -> dict[str, Any]:
    """Care-management minutes this month and the codes they reach (bhi_fhir.billing)."""
    try:
        from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
        from bhi_fhir.billing.rules import BillingRules, rules_from_plan

        # The practice plan's billing rules, as `bill` and the CDS billing card read them.
        rules = rules_from_plan(plan) if plan is not None else BillingRules()
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


def record_status(facts: dict[str, Any]) -> str:
    """"deceased" (the death is on or before today; FHIR R4 Patient.deceased[x]), "inactive
    record" (Patient.active false or replaced-by), or "" for a patient in the caseload.

    A deceased or inactive patient is shown apart from the caseload, never with work flags
    such as "no contact 4 weeks": the protocol gives them no new work (Medicare pays
    no services dated after death).
    """
    death = facts.get("deceased")
    if isinstance(death, dict) and str(death.get("date") or "") <= str(facts.get("today")):
        return "deceased"
    if "inactive" in facts:
        return "inactive record"
    return ""


def enrolled_in(resources: list[Resource], rule: EnrollmentRule = OWN_ENROLLMENT) -> bool:
    """Whether the registry lists this patient: one of the patient's own active CarePlans is
    the practice's BHI plan (``rule``), as the registry's enrollment searches find them."""
    if not resources:
        return False
    own = f"Patient/{resources[0].get('id')}"
    practice_added = EnrollmentRule(
        identifier_systems=rule.identifier_systems - OWN_ENROLLMENT.identifier_systems,
        instantiates=rule.instantiates - OWN_ENROLLMENT.instantiates,
    )
    return any(
        patient_of(resource) == own
        and is_enrollment(resource, rule)
        # found by the category search, or by a search for what the practice's rule adds
        and (
            has_code(resource.get("category"), SNOMED, MENTAL_HEALTH_CARE_PLAN)
            or is_bhi_plan(resource, practice_added)
        )
        for resource in resources[1:]
    )


def _care_manager(contributors: list[str], plan: PracticePlan | None) -> str:
    """The care manager of the enrollment: the plan's display for a contributor the plan names
    as a care manager, else the first contributor's reference, else ''."""
    if plan is not None:
        names = {m.reference: m.display for m in plan.team.care_managers}
        for ref in contributors:
            if ref in names:
                return names[ref]
    return contributors[0] if contributors else ""


def _billing_status(billing: dict[str, Any]) -> str:
    if not billing.get("available"):
        return "unavailable"
    if billing.get("codes"):
        return "billable: " + ", ".join(billing["codes"])
    reasons = billing.get("reasons") or []
    return "not billable: " + reasons[0] if reasons else "not billable"


def _review_status(facts: dict[str, Any], flags: list[str]) -> str:
    """The psychiatric consultant's review: '' before the review window, "due" when the patient
    is not improving in it, "on target" when the target is met (response or remission)."""
    if not facts.get("reviewPeriod"):
        return ""
    return "due" if "not improving" in flags else "on target"


def registry_row(
    resources: list[Resource], today: date, plan: PracticePlan | None
) -> dict[str, Any]:
    """The registry's row of one patient (the Patient first, then the patient's resources)."""
    patient = resources[0]
    facts = timeline_of(resources, today, plan).facts
    billing = billing_summary(resources, today, plan)
    latest = facts.get("latest") or {}
    target = facts.get("target") or {}
    targets = facts.get("targets") or {}
    contacts = facts.get("contacts") or {}
    enrollment = facts.get("enrollment") or {}
    days_without = contacts.get("daysWithout")
    status = record_status(facts)
    crises = facts.get("crises") or []
    flags: list[str] = []
    if status == "deceased":
        pass  # no work flags at all (see record_status)
    elif crises:
        # a crisis on an inactive record is still shown (a crisis answer is never dropped)
        flags.append("crisis")
    if status != "deceased" and any(f.get("suicideItemUnknown") for f in latest.values()):
        flags.append("suicide item unknown")  # a total without item 9: ask, never "no risk"
    if not status and isinstance(days_without, int) and days_without >= NO_CONTACT_DAYS:
        flags.append("no contact 4 weeks")
    improving = target.get("response") or target.get("remission")
    if not status and facts.get("reviewPeriod") and not improving:
        flags.append("not improving")
    interval = plan.handoffs.contact_interval_days if plan is not None else NO_CONTACT_DAYS
    next_contact = (
        (today - timedelta(days=days_without) + timedelta(days=interval)).isoformat()
        if isinstance(days_without, int) and not status else ""
    )

    def baseline(instrument: str) -> Any:
        return ((targets.get(instrument) or {}).get("baseline") or {}).get("total")

    def change(instrument: str) -> Any:
        return (targets.get(instrument) or {}).get("improvementPercent")

    return {
        "status": status,
        "id": str(patient.get("id")),
        "name": patient_name(patient),
        "care_manager": _care_manager(list(enrollment.get("contributors") or []), plan),
        "enrolled_since": enrollment.get("start") or "",
        "phq9": (latest.get("phq9") or {}).get("total"),
        "gad7": (latest.get("gad7") or {}).get("total"),
        "phq9_baseline": baseline("phq9"),
        "gad7_baseline": baseline("gad7"),
        "phq9_change": change("phq9"),
        "gad7_change": change("gad7"),
        "change": target.get("improvementPercent"),
        "weeks": facts.get("weeksInTreatment"),
        "last_contact": contacts.get("last") or "",
        "next_contact_due": next_contact,
        "flags": flags,
        "review": "not improving" in flags,
        "review_status": _review_status(facts, flags),
        "minutes": billing.get("minutes"),
        "billing_status": _billing_status(billing),
    }


def malformed_row(patient_id: str) -> dict[str, Any]:
    """The registry row of a patient whose record could not be read: listed, flagged, no data."""
    return {
        "id": patient_id,
        "name": f"Patient/{patient_id}",
        "care_manager": "",
        "enrolled_since": "",
        "phq9": None,
        "gad7": None,
        "phq9_baseline": None,
        "gad7_baseline": None,
        "phq9_change": None,
        "gad7_change": None,
        "change": None,
        "weeks": None,
        "last_contact": "",
        "next_contact_due": "",
        "flags": [MALFORMED_FLAG],
        "review": False,
        "review_status": "",
        "minutes": None,
        "billing_status": "",
        "status": "",  # not known: listed in the caseload, where it will be looked at
    }
