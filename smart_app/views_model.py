"""What the pages show, computed from a patient's resources: pure functions, no I/O.

Scores come from ``bhi_fhir.instruments``, facts (weeks in treatment, targets, contacts, crises)
from ``bhi_fhir.timeline``, minutes and codes from ``bhi_fhir.billing``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.practice_plan import PracticePlan

# The registry's one computation, shared with the read model in the store (re-exported).
from bhi_fhir.registry.rows import NO_CONTACT_DAYS as NO_CONTACT_DAYS
from bhi_fhir.registry.rows import billing_summary, patient_name, timeline_of
from bhi_fhir.registry.rows import record_status as record_status
from bhi_fhir.registry.rows import registry_row as registry_row
from bhi_fhir.registry.rows import timeline_settings_for as timeline_settings_for
from bhi_fhir.timeline import TERMINAL_STATUSES

logger = logging.getLogger(__name__)


# Severity bands drawn behind the chart (PHQ-9: Kroenke 2001; GAD-7: Spitzer 2006).
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
