"""Small FHIR resource builders for billing tests: one patient, a care team, time entries."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from bhi_fhir.billing.representation import time_entry
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, HCPCS, ICD10CM, SNOMED, V3_ACT_CODE

TZ = ZoneInfo("America/New_York")
PATIENT = "Patient/p1"
PCP = "Practitioner/pcp"
BHCM = "Practitioner/bhcm"
BHCM2 = "Practitioner/bhcm2"
PSYCH = "Practitioner/psych"
ENTRY_SYSTEM = "urn:example:ehr:time-entry"

# The practice names its care managers: CoCM minutes are their time (CMS MLN909432).
RULES = BillingRules(
    timezone="America/New_York", billing_practitioner=PCP, care_managers=[BHCM, BHCM2]
)

_ids = count(1)


def at(text: str) -> datetime:
    """A local wall-clock time in the practice's zone: '2026-10-05 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def entry(
    start: str,
    minutes: float,
    *,
    clinician: str = BHCM,
    mode: str = "phone",
    program: str | None = None,
    patient: str = PATIENT,
    **changes: Any,
) -> dict[str, Any]:
    n = next(_ids)
    begin = at(start)
    resource = time_entry(
        id=f"te{n}",
        patient=patient,
        clinician=clinician,
        start=begin,
        end=begin + timedelta(minutes=minutes),
        mode=mode,  # type: ignore[arg-type]
        program=program,  # type: ignore[arg-type]
        identifier_system=ENTRY_SYSTEM,
        identifier_value=f"te{n}",
    )
    resource.update(changes)
    return resource


def visit(
    start: str, code: str = "99213", *, minutes: int = 30, clinician: str = PCP, **changes: Any
) -> dict[str, Any]:
    """A separately billed face-to-face service (E/M, psychotherapy, …)."""
    begin = at(start)
    system = CPT if code[0].isdigit() else HCPCS
    resource = {
        "resourceType": "Encounter",
        "id": f"v{next(_ids)}",
        "status": "finished",
        "class": {"system": V3_ACT_CODE, "code": "AMB"},
        "type": [{"coding": [{"system": system, "code": code}]}],
        "subject": {"reference": PATIENT},
        "participant": [{"individual": {"reference": clinician}}],
        "period": {
            "start": begin.isoformat(),
            "end": (begin + timedelta(minutes=minutes)).isoformat(),
        },
    }
    resource.update(changes)
    return resource


def inpatient(start: str, end: str | None) -> dict[str, Any]:
    period = {"start": at(start).isoformat()}
    if end is not None:
        period["end"] = at(end).isoformat()
    return {
        "resourceType": "Encounter",
        "id": f"ip{next(_ids)}",
        "status": "finished" if end else "in-progress",
        "class": {"system": V3_ACT_CODE, "code": "IMP"},
        "subject": {"reference": PATIENT},
        "period": period,
    }


def consent(date_time: str | None = "2026-01-05", **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": f"c{next(_ids)}",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": PATIENT},
    }
    if date_time is not None:
        resource["dateTime"] = date_time
    resource.update(changes)
    return resource


def careplan(
    start: str = "2026-01-05",
    end: str | None = None,
    *,
    identifier_system: str | None = BHI_IDENTIFIER,
) -> dict[str, Any]:
    """A BHI CarePlan as bhi-fhir writes it (its identifier); ``identifier_system=None`` is
    another service's mental-health care plan (the category alone)."""
    period = {"start": start}
    if end is not None:
        period["end"] = end
    plan_id = f"cp{next(_ids)}"
    identifiers = (
        [{"system": identifier_system, "value": f"enroll.careplan:{plan_id}"}]
        if identifier_system
        else []
    )
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        **({"identifier": identifiers} if identifiers else {}),
        "status": "completed" if end else "active",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": "718347000"}]}],
        "subject": {"reference": PATIENT},
        "period": period,
    }


def careteam(*, consultant: bool = True, extra: list[str] = ()) -> dict[str, Any]:
    participants = [
        {"member": {"reference": PCP}},
        {"member": {"reference": BHCM}},
        *({"member": {"reference": ref}} for ref in extra),
    ]
    if consultant:
        participants.append(
            {
                "role": [{"coding": [{"system": SNOMED, "code": "80584001"}]}],
                "member": {"reference": PSYCH},
            }
        )
    return {
        "resourceType": "CareTeam",
        "id": f"ct{next(_ids)}",
        "status": "active",
        "subject": {"reference": PATIENT},
        "participant": participants,
    }


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:example:mrn",
                "value": "MRN-0001",
            }
        ],
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "gender": "female",
    }


def condition(
    code: str = "F32.1", display: str = "Major depressive disorder, single episode, moderate"
):
    return {
        "resourceType": "Condition",
        "id": f"d{next(_ids)}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": ICD10CM, "code": code, "display": display}]},
        "subject": {"reference": PATIENT},
    }


def coverage(payor_display: str = "Medicare", payor_ref: str = "Organization/medicare"):
    return {
        "resourceType": "Coverage",
        "id": f"cov{next(_ids)}",
        "status": "active",
        "beneficiary": {"reference": PATIENT},
        "payor": [{"reference": payor_ref, "display": payor_display}],
    }


def chart(*, consent_on: str | None = "2026-01-05", consultant: bool = True) -> list[dict]:
    """A patient ready to bill: consent, BHI CarePlan, care team, initiating visit, diagnosis."""
    resources = [
        patient(),
        careplan(),
        careteam(consultant=consultant),
        visit("2026-01-02 09:00"),
        condition(),
        coverage(),
    ]
    if consent_on is not None:
        resources.append(consent(consent_on))
    return resources
