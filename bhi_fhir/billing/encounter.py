"""A billable patient-month as a US Core Encounter, its Provenance, and the transaction Bundle.

Pure: a :class:`~bhi_fhir.billing.ledger.PatientMonth` (and ``recorded``, the time of the run,
passed in) → FHIR JSON. Every resource is validated with ``fhir.resources.R4B`` on the way out.

The billing Encounter (one per billable patient-month and program):

==================  ===========================================================================
element             value, and why
==================  ===========================================================================
identifier          BHI_IDENTIFIER | ``billing-<program>-<patient id>-<YYYY-MM>``: patient,
                    month and program make one bill; the transaction writes it with
                    ``ifNoneExist`` on that identifier, so re-running never duplicates it.
status              ``finished`` — a month is billed once its time has accrued (CMS MLN909432).
class               ``VR`` when every counted contact was phone or video, else ``AMB``
                    (v3-ActCode, https://build.fhir.org/ig/HL7/UTG/ValueSet-encounter-class.html).
type                one CodeableConcept per billed code: CPT (99492, 99493, 99494, 99484) or
                    HCPCS (G2214, G0323, G0568–G0570). US Core's Encounter Type value set
                    includes all of CPT (US Core Encounter Type); HCPCS codes fall under its
                    extensible binding. Units: an extension ``billed-units`` (positiveInt) on that
                    CodeableConcept, also in ``text`` ("99494 x2"). Repeating a coding per unit
                    would be lost by any consumer that de-duplicates codings, and R4 Encounter has
                    no quantity.
subject             the Patient.
participant         billing practitioner (v3 ParticipationType ``PPRF``, primary performer) and
                    each care manager whose time was counted (``SPRF``, secondary performer).
period              the calendar month, date precision (``2026-10-01`` … ``2026-10-31``).
length              counted minutes (UCUM ``min``).
reasonCode          the behavioral-health diagnoses (ICD-10-CM F codes) on file.
serviceType         service-category ``22`` "Mental Health" with text "Behavioral health"
                    (R4 binding is example-only; no service-type code names BHI).
extension           ``bhi-program`` (cocm | bhi), as on the time entries.
==================  ===========================================================================

The Provenance (R4 Provenance has no ``identifier``): ``target`` = the Encounter,
``entity`` = each counted ledger entry (versioned reference, role ``source``), ``agent`` =
bhi-fhir (an identifier-only Device reference, so the server need not hold a Device resource),
``onBehalfOf`` = the billing practitioner. Idempotency comes from a ``meta.tag`` carrying the
same business identifier and ``ifNoneExist: _tag=…``. When late or corrected time changes a
billed month, the Encounter is updated in place (:mod:`bhi_fhir.billing.writeback`) and gets
one more Provenance per new version: key ``<identifier>-v<version>``, activity ``UPDATE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.provenance import Provenance

from bhi_fhir.billing.ledger import PatientMonth
from bhi_fhir.billing.representation import (
    BILLED_UNITS_EXT,
    BILLING_ENCOUNTER_PROFILE,
    PARTICIPATION_TYPE,
    PROGRAM_DISPLAY,
    PROGRAM_EXT,
    UCUM,
)
from bhi_fhir.codes import BHI_IDENTIFIER, V3_ACT_CODE
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.provenance import agent, provenance

__all__ = [
    "billing_encounter",
    "billing_provenance",
    "billing_transaction",
    "encounter_create_entry",
    "encounter_if_none_exist",
    "full_url",
    "provenance_create_entry",
    "provenance_if_none_exist",
    "provenance_key",
]


SERVICE_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/service-category"
_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, BHI_IDENTIFIER)
_CLASS_DISPLAY: Final = {"AMB": "ambulatory", "VR": "virtual"}


def full_url(kind: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, f'{kind}/{value}')}"


def encounter_if_none_exist(month: PatientMonth) -> str:
    return f"identifier={BHI_IDENTIFIER}|{month.identifier_value}"


def billing_encounter(month: PatientMonth) -> Resource:
    """The month's billing Encounter (see the module docstring); raises if not billable."""
    if not month.billable:
        raise ValueError(f"{month.patient} {month.month} {month.program} is not billable")
    types = []
    for code in month.codes:
        types.append(
            {
                "extension": [{"url": BILLED_UNITS_EXT, "valuePositiveInt": code.units}],
                "coding": [{"system": code.system, "code": code.code}],
                "text": str(code),
            }
        )
    participants = []
    if month.billing_practitioner is not None:
        participants.append(_participant("PPRF", "primary performer", month.billing_practitioner))
    for manager in month.care_managers:
        participants.append(_participant("SPRF", "secondary performer", manager))
    codes_text = ", ".join(str(c) for c in month.codes)
    summary = (
        f"{PROGRAM_DISPLAY[month.program]}, {month.month}: {codes_text} ({month.minutes} minutes)"
    )
    resource: Resource = {
        "resourceType": "Encounter",
        "meta": {"profile": [BILLING_ENCOUNTER_PROFILE]},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{escape(summary)}</div>',
        },
        "extension": [{"url": PROGRAM_EXT, "valueCode": month.program}],
        "identifier": [
            {"use": "official", "system": BHI_IDENTIFIER, "value": month.identifier_value}
        ],
        "status": "finished",
        "class": {
            "system": V3_ACT_CODE,
            "code": month.encounter_class,
            "display": _CLASS_DISPLAY[month.encounter_class],
        },
        "type": types,
        "serviceType": {
            "coding": [{"system": SERVICE_CATEGORY, "code": "22", "display": "Mental Health"}],
            "text": "Behavioral health",
        },
        "subject": {"reference": month.patient},
        "participant": participants,
        "period": {
            "start": month.month.first_day().isoformat(),
            "end": month.month.last_day().isoformat(),
        },
        "length": {"value": month.minutes, "unit": "min", "system": UCUM, "code": "min"},
    }
    if month.diagnoses:
        resource["reasonCode"] = [
            {
                "coding": [
                    {
                        "system": d.system,
                        "code": d.code,
                        **({"display": d.display} if d.display else {}),
                    }
                ]
            }
            for d in month.diagnoses
        ]
    Encounter.model_validate(resource)
    return resource


def _participant(code: str, display: str, reference: str) -> Resource:
    return {
        "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}],
        "individual": {"reference": reference},
    }


def provenance_key(month: PatientMonth, version: int | None = None) -> str:
    """The Provenance's idempotency key (``meta.tag`` code): the Encounter's business
    identifier for the first version, ``…-v<n>`` for the Provenance of version ``n`` ≥ 2."""
    if version is None or version <= 1:
        return month.identifier_value
    return f"{month.identifier_value}-v{version}"


def provenance_if_none_exist(key: str) -> str:
    return f"_tag={BHI_IDENTIFIER}|{key}"


def billing_provenance(
    month: PatientMonth,
    target: str,
    recorded: datetime,
    *,
    key: str | None = None,
    activity: str = "CREATE",
) -> Resource:
    """Provenance for the month's billing Encounter ``target``: the ledger entries it counted.

    ``key`` is the idempotency tag (:func:`provenance_key`); ``activity`` the v3-DataOperation
    (``CREATE`` for the first version, ``UPDATE`` when late or corrected time re-billed it)."""
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    device = {
        "type": "Device",
        "identifier": {"system": BHI_IDENTIFIER, "value": "bhi-fhir"},
        "display": "bhi-fhir billing",
    }
    verb = "billed" if activity == "CREATE" else "re-billed" if month.billable else "withdrew"
    summary = (
        f"bhi-fhir {verb} {month.program} {month.month} from {len(month.entries)} time entries"
    )
    resource = provenance(
        [target],
        key=key or provenance_key(month),
        operation=activity,
        recorded=recorded.isoformat(),
        agents=[agent(device, on_behalf_of=month.billing_practitioner)],
        sources=month.entries,
        summary=summary,
        occurred=(month.month.first_day().isoformat(), month.month.last_day().isoformat()),
    )
    Provenance.model_validate(resource)
    return resource


def encounter_create_entry(month: PatientMonth) -> Resource:
    """The transaction entry that creates the month's billing Encounter, conditionally."""
    return {
        "fullUrl": full_url("Encounter", month.identifier_value),
        "resource": billing_encounter(month),
        "request": {
            "method": "POST",
            "url": "Encounter",
            "ifNoneExist": encounter_if_none_exist(month),
        },
    }


def provenance_create_entry(
    month: PatientMonth, target: str, recorded: datetime, key: str, activity: str = "CREATE"
) -> Resource:
    """The transaction entry that creates the Provenance of ``target``, conditional on ``key``."""
    return {
        "fullUrl": full_url("Provenance", key),
        "resource": billing_provenance(month, target, recorded, key=key, activity=activity),
        "request": {
            "method": "POST",
            "url": "Provenance",
            "ifNoneExist": provenance_if_none_exist(key),
        },
    }


def billing_transaction(months: Iterable[PatientMonth], recorded: datetime) -> Resource:
    """A transaction Bundle: each billable month's Encounter and Provenance, both conditional
    creates, so the Bundle can be posted any number of times."""
    entries: list[Resource] = []
    for month in months:
        if not month.billable:
            continue
        encounter = encounter_create_entry(month)
        entries.append(encounter)
        entries.append(
            provenance_create_entry(month, encounter["fullUrl"], recorded, provenance_key(month))
        )
    bundle: Resource = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    Bundle.model_validate(bundle)
    return bundle
