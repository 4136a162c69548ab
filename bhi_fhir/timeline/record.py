"""What the patient's own resources say: the BHI enrollment and completed care, consent on
file, care-manager contacts, and the record's deceased and inactive state.

Care-manager contacts (AIMS Center "contact count and last contact date"): a finished or in-progress
Encounter, or a completed/in-progress Procedure, coded BHI_ACTIVITY ``care-management-contact``
(the billing ledger's entries), plus a *completed* engage or outreach Task that bhi-fhir
generated: completing that Task records that the care manager reached the patient.

The patient's own record is the Patient whose id matches ``patient`` (after a merge the
surviving record's resources and the replaced record's may be read together); ``deceased``
(FHIR R4 Patient.deceased[x], https://hl7.org/fhir/R4/patient.html) keeps a partial
deceasedDateTime as its earliest (``date``) and latest (``latest``) possible day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT
from bhi_fhir.fhirjson import Resource, replaced_by
from bhi_fhir.fhirjson import day as _day  # the day a date/dateTime is written on
from bhi_fhir.fhirjson import day_range as _death_days  # the days a partial date can mean
from bhi_fhir.timeline.model import OWN_ENROLLMENT, EnrollmentRule, TimelineSettings
from bhi_fhir.timeline.refs import codings, has_code, prune, ref_of, version_of, versioned

__all__ = [
    "completed_care",
    "consent_on_file",
    "contact_date",
    "enrollment_of",
    "is_bhi_plan",
    "is_enrollment",
    "own_record",
    "record_facts",
]

_CONTACT_TASK_CODES = frozenset({"engage", "outreach"})



def is_bhi_plan(resource: Resource, rule: EnrollmentRule = OWN_ENROLLMENT) -> bool:
    """True for a CarePlan, in any status, that ``rule`` recognises as the practice's BHI plan
    (its identifier system or the canonical it instantiates); a mental-health category alone
    is another service's plan."""
    if resource.get("resourceType") != "CarePlan":
        return False
    if any(
        isinstance(i, Mapping) and i.get("system") in rule.identifier_systems
        for i in resource.get("identifier") or []
    ):
        return True
    return any(
        isinstance(c, str) and c.split("|", 1)[0] in rule.instantiates
        for c in resource.get("instantiatesCanonical") or []
    )


def is_enrollment(resource: Resource, rule: EnrollmentRule = OWN_ENROLLMENT) -> bool:
    """True for an active CarePlan that ``rule`` recognises as the practice's BHI plan."""
    return resource.get("status") == "active" and is_bhi_plan(resource, rule)



def enrollment_of(resources: Sequence[Resource], rule: EnrollmentRule) -> Resource | None:
    plans = [r for r in resources if is_enrollment(r, rule)]
    if not plans:
        return None
    # The most recent enrollment wins; ties broken by id for a stable answer.
    return max(plans, key=lambda r: (str((r.get("period") or {}).get("start", "")), ref_of(r)))



def completed_care(resources: Sequence[Resource], rule: EnrollmentRule) -> dict[str, Any] | None:
    """The newest completed BHI CarePlan (``rule`` recognises it, as it would the active one)
    with the day care ended (``period.end``); None when there is none or it has no end."""
    done = [
        (end, r) for r in resources
        if r.get("status") == "completed" and is_bhi_plan(r, rule)
        and (end := _day((r.get("period") or {}).get("end"))) is not None
    ]
    if not done:
        return None
    end, plan = max(done, key=lambda pair: (pair[0], ref_of(pair[1])))
    return {"carePlan": ref_of(plan), "source": versioned(ref_of(plan), version_of(plan)),
            "end": end.isoformat()}



def consent_on_file(resources: Sequence[Resource], settings: TimelineSettings) -> Resource | None:
    found = [
        r
        for r in resources
        if r.get("resourceType") == "Consent"
        and r.get("status") == "active"
        and has_code(r.get("scope"), None, settings.consent_scope)
        and (
            settings.consent_category is None
            or has_code(r.get("category"), None, settings.consent_category)
        )
    ]
    return max(found, key=lambda r: (str(r.get("dateTime", "")), ref_of(r))) if found else None



def contact_date(resource: Resource, settings: TimelineSettings) -> date | None:
    kind = resource.get("resourceType")
    if kind == "Encounter":
        if resource.get("status") not in ("finished", "in-progress"):
            return None
        if not has_code(resource.get("type"), BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT):
            return None
        klass = resource.get("class")
        if (
            not settings.count_virtual_contacts
            and isinstance(klass, Mapping)
            and klass.get("code") == "VR"
        ):
            return None
        return _day((resource.get("period") or {}).get("start"))
    if kind == "Procedure":
        if resource.get("status") not in ("completed", "in-progress"):
            return None
        if not has_code(resource.get("code"), BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT):
            return None
        performed = resource.get("performedDateTime") or (
            resource.get("performedPeriod") or {}
        ).get("start")
        return _day(performed)
    if kind == "Task" and resource.get("status") == "completed":
        if not any(
            c.get("system") == BHI_ACTIVITY and c.get("code") in _CONTACT_TASK_CODES
            for c in codings(resource.get("code"))
        ):
            return None
        end = (resource.get("executionPeriod") or {}).get("end")
        return _day(end or resource.get("lastModified") or resource.get("authoredOn"))
    return None



def own_record(patient: str, resources: Sequence[Resource]) -> Resource | None:
    """The Patient resource that is ``patient`` (else the only Patient among ``resources``)."""
    records = [r for r in resources if r.get("resourceType") == "Patient"]
    for record in records:
        if f"Patient/{record.get('id')}" == patient:
            return record
    return records[0] if len(records) == 1 else None



def record_facts(record: Resource | None) -> dict[str, Any]:
    """``deceased`` and ``inactive`` from the patient's own record; absent fields say nothing."""
    facts: dict[str, Any] = {}
    if record is None:
        return facts
    days = _death_days(record.get("deceasedDateTime"))
    if days is not None:
        facts["deceased"] = {"date": days[0].isoformat(), "latest": days[1].isoformat()}
    elif record.get("deceasedBoolean") is True:
        facts["deceased"] = {}
    successor = replaced_by(record)
    if record.get("active") is False or successor is not None:
        facts["inactive"] = prune({"replacedBy": successor})
    return facts
