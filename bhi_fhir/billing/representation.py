"""How a care-management time entry is recorded in the EHR: one US Core Encounter per contact.

Why an Encounter (not a Procedure): a contact is something that happened *with or for* the
patient over a span of time, by a clinician, in a mode (in person / phone / video). Encounter
carries all of that natively — ``period`` (start and end), ``length`` (minutes), ``participant``
(the clinician), ``class`` (ambulatory vs virtual) — and it is what EHRs already search by
patient and date. The workflow engine counts the same resources as care-manager contacts, so
one resource serves both. US Core Procedure would need ``performedPeriod`` and a procedure code
for "care management", and has no place for the mode.

A time entry (what :func:`time_entry` builds and :mod:`bhi_fhir.billing.ledger` reads):

=====================  ========================================================================
element                value
=====================  ========================================================================
meta.profile           bhi-fhir's bhi-care-management-contact (profiles/fsh; on base R4, US Core
                       being out of reach where it is checked; as US Core Encounter it requires
                       status, class, type, subject)
identifier             the recording system's identifier (e.g. the EHR's, or ours)
status                 ``finished`` — only finished contacts count
class                  v3-ActCode ``AMB`` in person, ``VR`` for phone and video (both are
                       "virtual" in the encounter-class value set, HL7 UTG v3-ActCode)
type                   BHI_ACTIVITY ``care-management-contact`` (decided project-wide; a US
                       Core Encounter Type code has no "care management contact" concept)
subject                the Patient
participant            the clinician (``individual``), type v3 ParticipationType ``PPRF``
period                 start and end of the activity
length                 minutes (UCUM ``min``); used only when ``period.end`` is missing
extension contact-mode v3-ParticipationMode ``FACE`` / ``PHONE`` / ``VIDEOCONF``: phone and video
                       are both class VR, and R4 Encounter has no element that tells them apart
extension bhi-program  ``cocm`` or ``bhi`` (our CodeSystem bhi-program). Encounter.serviceType is
                       a single example-bound concept better left to "behavioral health"; the
                       program is a billing fact, not a service type. Missing → the practice's
                       default program.
=====================  ========================================================================

The monthly *billing* Encounter (:mod:`bhi_fhir.billing.encounter`) reuses the extensions below
and adds the billed-units extension.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from bhi_fhir.billing.codes import Program
from bhi_fhir.codes import BHI_ACTIVITY, BHI_BASE, CARE_MANAGEMENT_CONTACT, V3_ACT_CODE

__all__ = [
    "BILLED_UNITS_EXT",
    "BILLING_ENCOUNTER_PROFILE",
    "CONTACT_MODE_EXT",
    "PARTICIPATION_MODE",
    "PARTICIPATION_TYPE",
    "PROGRAM_EXT",
    "PROGRAM_SYSTEM",
    "TIME_ENTRY_PROFILE",
    "ContactMode",
    "time_entry",
]

# The bhi-fhir package's profiles (profiles/fsh) the time entry and the billing Encounter claim.
TIME_ENTRY_PROFILE: Final = f"{BHI_BASE}/StructureDefinition/bhi-care-management-contact"
BILLING_ENCOUNTER_PROFILE: Final = f"{BHI_BASE}/StructureDefinition/bhi-billing-encounter"
PARTICIPATION_MODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
UCUM: Final = "http://unitsofmeasure.org"

CONTACT_MODE_EXT: Final = f"{BHI_BASE}/StructureDefinition/contact-mode"
PROGRAM_EXT: Final = f"{BHI_BASE}/StructureDefinition/bhi-program"
PROGRAM_SYSTEM: Final = f"{BHI_BASE}/CodeSystem/bhi-program"
BILLED_UNITS_EXT: Final = f"{BHI_BASE}/StructureDefinition/billed-units"

ContactMode = Literal["in-person", "phone", "video"]
CONTACT_MODE_CODES: Final[dict[str, str]] = {
    "in-person": "FACE",
    "phone": "PHONE",
    "video": "VIDEOCONF",
}
CONTACT_MODE_BY_CODE: Final[dict[str, ContactMode]] = {
    "FACE": "in-person",
    "PHONE": "phone",
    "VIDEOCONF": "video",
}
PROGRAM_DISPLAY: Final[dict[str, str]] = {
    "cocm": "Psychiatric collaborative care (CoCM)",
    "bhi": "General behavioral health integration",
}


def time_entry(
    *,
    id: str,
    patient: str,
    clinician: str,
    start: datetime,
    end: datetime,
    mode: ContactMode,
    program: Program | None = None,
    identifier_system: str,
    identifier_value: str,
) -> dict[str, Any]:
    """A care-management time entry as a US Core Encounter (see the module docstring)."""
    minutes = round((end - start).total_seconds() / 60)
    extensions: list[dict[str, Any]] = [
        {
            "url": CONTACT_MODE_EXT,
            "valueCoding": {"system": PARTICIPATION_MODE, "code": CONTACT_MODE_CODES[mode]},
        }
    ]
    if program is not None:
        extensions.append({"url": PROGRAM_EXT, "valueCode": program})
    return {
        "resourceType": "Encounter",
        "id": id,
        "meta": {"profile": [TIME_ENTRY_PROFILE]},
        "extension": extensions,
        "identifier": [{"system": identifier_system, "value": identifier_value}],
        "status": "finished",
        "class": {
            "system": V3_ACT_CODE,
            "code": "AMB" if mode == "in-person" else "VR",
            "display": "ambulatory" if mode == "in-person" else "virtual",
        },
        "type": [
            {
                "coding": [
                    {
                        "system": BHI_ACTIVITY,
                        "code": CARE_MANAGEMENT_CONTACT,
                        "display": "Care-management contact",
                    }
                ],
                "text": "Care-management contact",
            }
        ],
        "subject": {"reference": patient},
        "participant": [
            {
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF"}]}],
                "individual": {"reference": clinician},
            }
        ],
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "length": {"value": minutes, "unit": "min", "system": UCUM, "code": "min"},
    }
