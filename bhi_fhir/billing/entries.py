"""Reading the time ledger: care-management Encounters → :class:`LedgerEntry` records.

Pure: a ledger entry is a *finished* Encounter typed BHI_ACTIVITY ``care-management-contact``
(:mod:`bhi_fhir.billing.representation`). Its time is ``period`` (start–end), or ``start`` +
``length`` when ``period.end`` is missing. An entry that itself carries a separately billed
CPT/HCPCS code (psychotherapy, an E/M, …) is not care-management time at all (AAP News).
Anything unreadable is a :class:`Rejected` with its reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from bhi_fhir.billing._time import (
    billing_codes_of,
    get_dict,
    get_list,
    is_time_entry,
    participants_of,
    reference_of,
    span_of,
    versioned_reference,
)
from bhi_fhir.billing.codes import MONTHLY_CARE_MANAGEMENT_CODES, Program
from bhi_fhir.billing.representation import (
    CONTACT_MODE_BY_CODE,
    CONTACT_MODE_EXT,
    PROGRAM_EXT,
    ContactMode,
)
from bhi_fhir.fhirjson import ResourceDict as Resource

__all__ = ["LedgerEntry", "Rejected", "ledger_entries", "ledger_entry"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One care-management contact, as recorded."""

    reference: str  # "Encounter/<id>[/_history/<version>]"
    patient: str  # "Patient/<id>"
    clinician: str | None
    start: datetime
    end: datetime
    program: Program | None
    mode: ContactMode | None
    virtual: bool
    # False when the entry gives a day and a duration but no clock time: its interval is
    # placed at the day's start, so it cannot be checked for overlap with other entries.
    timed: bool = True

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


@dataclass(frozen=True, slots=True)
class Rejected:
    """A care-management Encounter (or part of its time) that is not counted, and why.

    ``code`` is stable (``not-care-manager``, ``after-death``, ``after-episode-end``, …);
    ``minutes`` is how much of the entry's time in the month is not counted, when only part of
    an otherwise readable entry is cut (``None``: the whole entry is unreadable or refused)."""

    reference: str
    reason: str
    code: str = "unreadable"
    minutes: int | None = None


def ledger_entry(encounter: Resource, tz: tzinfo) -> LedgerEntry | Rejected:
    """Read one care-management Encounter tolerantly."""
    reference = versioned_reference(encounter)
    if reference is None:
        return Rejected("Encounter (no id)", "no id, so it cannot be cited")
    status = encounter.get("status")
    if status != "finished":
        return Rejected(reference, f"status {status!r} is not a finished contact")
    patient = reference_of(encounter.get("subject"))
    if patient is None or not patient.startswith("Patient/"):
        return Rejected(reference, "no Patient subject")
    span = span_of(encounter, tz)
    if span is None:
        return Rejected(reference, "no period.start with period.end or length")
    if span[1] <= span[0]:
        return Rejected(reference, "ends before it starts")
    billed = billing_codes_of(encounter) - MONTHLY_CARE_MANAGEMENT_CODES
    if billed:
        codes = ", ".join(sorted(billed))
        return Rejected(reference, f"separately billed service ({codes}), not care-management time")
    program: Program | None = None
    mode: ContactMode | None = None
    for ext in get_list(encounter, "extension"):
        if not isinstance(ext, dict):
            continue
        if ext.get("url") == PROGRAM_EXT and ext.get("valueCode") in ("cocm", "bhi"):
            program = "cocm" if ext["valueCode"] == "cocm" else "bhi"
        elif ext.get("url") == CONTACT_MODE_EXT:
            code = get_dict(ext, "valueCoding").get("code")
            mode = CONTACT_MODE_BY_CODE.get(str(code))
    klass = get_dict(encounter, "class").get("code")
    virtual = mode in ("phone", "video") if mode is not None else klass == "VR"
    participants = participants_of(encounter)
    timed = "T" in str(get_dict(encounter, "period").get("start"))
    return LedgerEntry(
        reference=reference,
        patient=patient,
        clinician=participants[0] if participants else None,
        start=span[0],
        end=span[1],
        program=program,
        mode=mode,
        virtual=virtual,
        timed=timed,
    )


def ledger_entries(
    encounters: Iterable[Resource], tz: tzinfo
) -> tuple[list[LedgerEntry], list[Rejected]]:
    """The care-management entries among ``encounters`` (others are ignored), and rejections."""
    entries: list[LedgerEntry] = []
    rejected: list[Rejected] = []
    for encounter in encounters:
        if not is_time_entry(encounter):
            continue
        result = ledger_entry(encounter, tz)
        if isinstance(result, LedgerEntry):
            entries.append(result)
        else:
            rejected.append(result)
    return entries, rejected
