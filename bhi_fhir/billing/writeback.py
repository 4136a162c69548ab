"""Re-computable month-close: compare a month's bill with the one already written, and decide.

Pure: a :class:`~bhi_fhir.billing.ledger.PatientMonth`, the billing Encounter the server holds
for it (found by its business identifier, or ``None``) and the run time in; a :class:`Write`
out — the action and the transaction entries that carry it out.

Time arrives late: a care manager logs a call on the 3rd of the next month, or corrects an
entry after the month was billed. Closing the month again must then bring the bill up to date,
and closing it a third time must write nothing. So:

==============  ====================================================================  ==========
server holds    the month now                                                         action
==============  ====================================================================  ==========
nothing         billable                                                              ``create``
a bill          billable, same codes/units, minutes, participants, class, diagnoses   ``unchanged``
a bill          billable, any of those differ                                         ``update``
a bill          not billable any more (e.g. corrected time below every threshold)     ``stale``
a bill          no time entry left (each one deleted or entered in error)             ``cancel``
nothing         not billable                                                          ``none``
==============  ====================================================================  ==========

``create`` is the conditional create of :func:`~bhi_fhir.billing.encounter.billing_transaction`
(Encounter ``ifNoneExist`` identifier, Provenance ``ifNoneExist`` ``_tag``). ``update`` is a
versioned update — ``PUT Encounter/<id>`` with ``ifMatch`` = the version read, so a concurrent
change is refused (HAPI: 412 on a plain PUT, 409 inside a transaction) instead of lost — plus a
*new* Provenance for the new version: activity ``UPDATE``, key ``<identifier>-v<n>`` in
``meta.tag`` and ``ifNoneExist: _tag=…`` (the same idempotency convention as the first one), and
the ledger entries counted now. Elements of the stored Encounter that billing does not write
(an ``account`` the EHR added, its tags) are kept; every element billing writes is replaced.
``stale`` writes nothing: withdrawing a bill is a billing office decision, so it is reported.

``cancel`` (:func:`orphaned_bills`, :func:`plan_cancel`): a bill whose month no longer has a
single time entry — each was deleted or marked entered-in-error after billing — records
nothing that happened, so it is proposed for cancellation: the same versioned update
(``ifMatch``), with ``status`` ``entered-in-error`` (R4 Encounter: "this instance should not
have been recorded"; ``cancelled`` means an encounter that ended before it began) and a
Provenance (activity ``UPDATE``, key ``<identifier>-v<n>``). A bill already
``entered-in-error`` or ``cancelled`` plans nothing, so repeating the run writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from bhi_fhir.billing._time import codings, get_dict, get_list, reference_of
from bhi_fhir.billing.codes import Program
from bhi_fhir.billing.encounter import (
    billing_encounter,
    encounter_create_entry,
    provenance_create_entry,
    provenance_key,
)
from bhi_fhir.billing.ledger import Month, PatientMonth, Reason
from bhi_fhir.billing.representation import BILLED_UNITS_EXT, PARTICIPATION_TYPE
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, HCPCS
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import etag

__all__ = [
    "NO_TIME_ENTRIES",
    "Action",
    "BillContent",
    "Write",
    "bill_content",
    "bill_identifier",
    "orphaned_bills",
    "plan_cancel",
    "plan_write",
    "write_bundle",
]

Action = Literal["create", "update", "unchanged", "stale", "cancel", "none"]

NO_TIME_ENTRIES: Final = Reason(
    "no-time-entries",
    "every time entry behind this bill was deleted or entered in error: the bill is proposed "
    "for cancellation (status entered-in-error)",
)
_WITHDRAWN: Final = frozenset({"entered-in-error", "cancelled"})


@dataclass(frozen=True, slots=True)
class BillContent:
    """What a bill says, read tolerantly from a billing Encounter: the comparison key."""

    codes: tuple[tuple[str, str, int], ...]  # (system, code, units), sorted
    minutes: float | None
    participants: tuple[tuple[str, str], ...]  # (ParticipationType code, reference), sorted
    encounter_class: str | None
    diagnoses: tuple[tuple[str, str], ...]
    status: str | None


def _units(concept: Resource) -> int:
    for ext in get_list(concept, "extension"):
        if isinstance(ext, dict) and ext.get("url") == BILLED_UNITS_EXT:
            value = ext.get("valuePositiveInt")
            if isinstance(value, int) and value > 0:
                return value
    return 1


def bill_content(encounter: Resource) -> BillContent:
    codes = []
    for concept in get_list(encounter, "type"):
        if not isinstance(concept, dict):
            continue
        units = _units(concept)
        for system, code, _ in codings([concept]):
            if system in (CPT, HCPCS):
                codes.append((system, code, units))
    participants = []
    for participant in get_list(encounter, "participant"):
        if not isinstance(participant, dict):
            continue
        ref = reference_of(participant.get("individual"))
        kinds = [c for s, c, _ in codings(get_list(participant, "type")) if s == PARTICIPATION_TYPE]
        if ref is not None:
            participants.append((kinds[0] if kinds else "", ref))
    length = get_dict(encounter, "length").get("value")
    klass = get_dict(encounter, "class").get("code")
    status = encounter.get("status")
    return BillContent(
        codes=tuple(sorted(codes)),
        minutes=float(length) if isinstance(length, int | float) else None,
        participants=tuple(sorted(participants)),
        encounter_class=klass if isinstance(klass, str) else None,
        diagnoses=tuple(sorted((s, c) for s, c, _ in codings(get_list(encounter, "reasonCode")))),
        status=status if isinstance(status, str) else None,
    )


@dataclass(frozen=True, slots=True)
class Write:
    """What the month-close does for one patient-month."""

    month: PatientMonth
    action: Action
    existing: Resource | None = None
    entries: list[Resource] = field(default_factory=list)  # transaction entries, in order
    changes: tuple[str, ...] = ()  # which parts of the bill changed (for the report)

    @property
    def version(self) -> str | None:
        """The stored Encounter's version this write was planned against."""
        if self.existing is None:
            return None
        version = get_dict(self.existing, "meta").get("versionId")
        return str(version) if version is not None else None


def _changes(old: BillContent, new: BillContent) -> tuple[str, ...]:
    names = ("codes", "minutes", "participants", "encounter_class", "diagnoses", "status")
    return tuple(n for n in names if getattr(old, n) != getattr(new, n))


def _next_version(version: str | None) -> int | None:
    return int(version) + 1 if version is not None and version.isdigit() else None


def plan_write(month: PatientMonth, existing: Resource | None, recorded: datetime) -> Write:
    """The write that brings the server's bill for ``month`` up to date (module docstring)."""
    if not month.billable:
        return Write(month, "stale" if existing is not None else "none", existing)
    if existing is None:
        encounter = encounter_create_entry(month)
        entries = [
            encounter,
            provenance_create_entry(month, encounter["fullUrl"], recorded, provenance_key(month)),
        ]
        return Write(month, "create", None, entries)

    desired = billing_encounter(month)
    changes = _changes(bill_content(existing), bill_content(desired))
    if not changes:
        return Write(month, "unchanged", existing)
    resource_id = str(existing.get("id", ""))
    if not resource_id:
        raise ValueError("the stored billing Encounter has no id")
    write = Write(month, "update", existing, changes=changes)
    meta = {
        k: v
        for k, v in get_dict(existing, "meta").items()
        if k not in ("versionId", "lastUpdated", "profile")
    }
    updated: Resource = {
        **existing,
        **desired,
        "id": resource_id,
        "meta": {**meta, **desired["meta"]},
    }
    _versioned_update(write, updated, resource_id, recorded, "after")
    return write


def _versioned_update(
    write: Write, resource: Resource, resource_id: str, recorded: datetime, label: str
) -> None:
    """Add to ``write`` the PUT of ``resource`` guarded by the version it was read at, and
    the Provenance of that update, keyed by the version it creates so a retry adds none."""
    version = write.version
    next_version = _next_version(version)
    request: Resource = {"method": "PUT", "url": f"Encounter/{resource_id}"}
    if version is not None:
        request["ifMatch"] = etag(version)
    target = f"Encounter/{resource_id}"
    if next_version is not None:
        target += f"/_history/{next_version}"
    month = write.month
    key = (
        provenance_key(month, next_version)
        if next_version is not None
        else f"{month.identifier_value}-{label}-{version or 'unversioned'}"
    )
    write.entries.extend(
        [
            {"resource": resource, "request": request},
            provenance_create_entry(month, target, recorded, key, "UPDATE"),
        ]
    )


def write_bundle(writes: list[Write]) -> Resource:
    """One transaction Bundle with every planned write's entries (e.g. for ``--out``)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry for write in writes for entry in write.entries],
    }


def bill_identifier(encounter: Resource) -> str | None:
    """The billing Encounter's business identifier value (``billing-<program>-<id>-<month>``)."""
    for ident in get_list(encounter, "identifier"):
        if isinstance(ident, dict) and ident.get("system") == BHI_IDENTIFIER:
            value = ident.get("value")
            if isinstance(value, str) and value.startswith("billing-"):
                return value
    return None


def orphaned_bills(
    bills: Iterable[Resource], months: Iterable[PatientMonth], month: Month
) -> list[Resource]:
    """The month's standing billing Encounters with no patient-month behind them any more:
    every time entry of that patient, program and month was deleted or entered in error."""
    closed = {m.identifier_value for m in months}
    out: dict[str, Resource] = {}
    for bill in bills:
        value = bill_identifier(bill)
        if value is None or not value.endswith(f"-{month}") or value in closed:
            continue
        if bill.get("status") in _WITHDRAWN:
            continue
        out.setdefault(value, bill)
    return [out[k] for k in sorted(out)]


def _month_of_bill(bill: Resource, month: Month) -> PatientMonth:
    """A not-billable patient-month standing for ``bill`` (for the report and Provenance)."""
    value = bill_identifier(bill) or ""
    program: Program = "bhi" if value.startswith("billing-bhi-") else "cocm"
    performers = {kind: ref for kind, ref in bill_content(bill).participants}
    klass = get_dict(bill, "class").get("code")
    return PatientMonth(
        patient=reference_of(bill.get("subject")) or "Patient/unknown",
        month=month,
        program=program,
        month_kind=None,
        minutes=0,
        recorded_minutes=0,
        codes=(),
        reasons=(NO_TIME_ENTRIES,),
        requirements={},
        entries=(),
        billing_practitioner=performers.get("PPRF"),
        care_managers=(),
        diagnoses=(),
        payer=None,
        mrn=None,
        encounter_class="VR" if klass == "VR" else "AMB",
        episode_start=None,
    )


def plan_cancel(bill: Resource, month: Month, recorded: datetime) -> Write:
    """Withdraw a bill with no time entry left (module docstring): a versioned update to
    ``entered-in-error`` and its Provenance; nothing when it is already withdrawn."""
    standing = _month_of_bill(bill, month)
    if bill.get("status") in _WITHDRAWN:
        return Write(standing, "unchanged", bill)
    resource_id = str(bill.get("id", ""))
    if not resource_id:
        raise ValueError("the stored billing Encounter has no id")
    write = Write(standing, "cancel", bill, changes=("status",))
    withdrawn = {**bill, "status": "entered-in-error"}
    _versioned_update(write, withdrawn, resource_id, recorded, "withdrawn-after")
    return write
