"""One patient's record as billing reads it, and what it says about a month.

Pure: resources (plain FHIR JSON dicts, read tolerantly) are sorted into one
:class:`PatientRecord` per patient; the readers below answer the questions the ledger asks of
it — when consent was documented, when a BHI episode ended (discharge), whether and when the
patient died, which spans are excluded (separately billed services, inpatient or observation
stays), the behavioral-health diagnoses, the MRN, the payer, the care team, the initiating visit
and APCM base codes billed in the month.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from bhi_fhir import fhirjson
from bhi_fhir.billing._time import (
    FAR_FUTURE,
    FAR_PAST,
    Interval,
    Month,
    billing_codes_of,
    codings,
    get_dict,
    get_list,
    has_coding,
    is_time_entry,
    parse_datetime,
    participants_of,
    reference_of,
    span_of,
    union,
)
from bhi_fhir.billing.codes import APCM_BASE_CODES, MONTHLY_CARE_MANAGEMENT_CODES, PayerRules
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.codes import ICD10CM
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule, is_bhi_plan

__all__ = [
    "Diagnosis",
    "Exclusion",
    "PatientRecord",
    "after_death_of",
    "apcm_base_by",
    "care_team_members",
    "consent_windows",
    "diagnoses_of",
    "discharge_blocks",
    "exclusions_of",
    "group_by_patient",
    "has_initiating_visit",
    "mrn_of",
    "patient_of",
    "payer_of",
]

_INPATIENT_CLASSES: Final = frozenset({"IMP", "ACUTE", "NONAC", "OBSENC"})
_V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"

_PATIENT_KEYS: Final = {
    "Encounter": "subject",
    "Consent": "patient",
    "CarePlan": "subject",
    "CareTeam": "subject",
    "Condition": "subject",
    "Coverage": "beneficiary",
}


@dataclass(slots=True)
class PatientRecord:
    """Everything billing reads about one patient."""

    patient: str
    resource: Resource | None = None
    encounters: list[Resource] = field(default_factory=list)
    consents: list[Resource] = field(default_factory=list)
    careplans: list[Resource] = field(default_factory=list)
    careteams: list[Resource] = field(default_factory=list)
    conditions: list[Resource] = field(default_factory=list)
    coverages: list[Resource] = field(default_factory=list)

    def add(self, resource: Resource) -> None:
        kind = resource.get("resourceType")
        if kind == "Patient":
            self.resource = resource
            return
        bucket = {
            "Encounter": self.encounters,
            "Consent": self.consents,
            "CarePlan": self.careplans,
            "CareTeam": self.careteams,
            "Condition": self.conditions,
            "Coverage": self.coverages,
        }.get(str(kind))
        if bucket is not None:
            bucket.append(resource)


def patient_of(resource: Resource) -> str | None:
    """The patient of a resource billing reads (Patient and ``_PATIENT_KEYS`` types), else None."""
    kind = resource.get("resourceType")
    if kind != "Patient" and kind not in _PATIENT_KEYS:
        return None
    return fhirjson.patient_of(resource)


def group_by_patient(resources: Iterable[Resource]) -> dict[str, PatientRecord]:
    """Resources sorted into one record per patient; other resources are ignored."""
    records: dict[str, PatientRecord] = {}
    for resource in resources:
        patient = patient_of(resource)
        if patient is None:
            continue
        records.setdefault(patient, PatientRecord(patient)).add(resource)
    return records


@dataclass(frozen=True, slots=True)
class Diagnosis:
    system: str
    code: str
    display: str | None


def consent_windows(record: PatientRecord, rules: BillingRules, tz: tzinfo) -> list[Interval]:
    windows: list[Interval] = []
    for consent in record.consents:
        scope_codes = {c for _, c, _ in codings([consent.get("scope")])}
        if rules.consent_scope not in scope_codes:
            continue
        status = consent.get("status")
        period = get_dict(get_dict(consent, "provision"), "period")
        end = parse_datetime(period.get("end"), tz, end=True)
        if status != "active" and not (status == "inactive" and end is not None):
            continue
        start = parse_datetime(consent.get("dateTime"), tz) or parse_datetime(
            period.get("start"), tz
        )
        if start is None:
            continue
        windows.append((start, end or FAR_FUTURE))
    return union(windows)


def discharge_blocks(
    record: PatientRecord, tz: tzinfo, rule: EnrollmentRule = OWN_ENROLLMENT
) -> tuple[list[Interval], list[str]]:
    """Spans after a BHI episode ended (until a later BHI CarePlan starts), and warnings.

    A BHI CarePlan is one ``rule`` recognises (bhi-fhir's own, or the practice's by identifier
    system or instantiated canonical); another service's mental-health care plan ending does
    not end the BHI episode, so it holds no minutes back.

    The episode ends at the CarePlan's ``period.end`` (a date ends with its day; episode of care: NC
    Medicaid citing AMA). A plan ``completed`` or ``revoked`` without ``period.end`` ended at the
    latest when it was last
    changed (``meta.lastUpdated``); without that either, its end is unknown (a warning)."""
    plans: list[Interval] = []
    warnings: list[str] = []
    for plan in record.careplans:
        if plan.get("status") in ("entered-in-error", "draft"):
            continue
        if not is_bhi_plan(plan, rule):
            continue
        period = get_dict(plan, "period")
        start = parse_datetime(period.get("start"), tz) or FAR_PAST
        end = parse_datetime(period.get("end"), tz, end=True)
        if end is None and plan.get("status") in ("completed", "revoked"):
            end = parse_datetime(get_dict(plan, "meta").get("lastUpdated"), tz)
            if end is None:
                warnings.append(
                    f"BHI CarePlan {plan.get('status')} without period.end or meta.lastUpdated: "
                    "the episode's end is unknown, time after it cannot be held back (episode of "
                    "care: NC Medicaid citing AMA)"
                )
        plans.append((start, end or FAR_FUTURE))
    blocks = []
    for _, end in plans:
        if end == FAR_FUTURE:
            continue
        later = [s for s, _ in plans if s >= end]
        blocks.append((end, min(later) if later else FAR_FUTURE))
    return union(blocks), warnings


def after_death_of(record: PatientRecord, tz: tzinfo) -> tuple[datetime | None, bool]:
    """The first instant after the date of death (Medicare pays no services dated after it), and
    whether the patient is recorded deceased without a date (``deceasedBoolean``)."""
    patient = record.resource or {}
    moment = parse_datetime(patient.get("deceasedDateTime"), tz)
    if moment is not None:
        day = moment.astimezone(tz).date()
        return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1), False
    return None, patient.get("deceasedBoolean") is True


@dataclass(frozen=True, slots=True)
class Exclusion:
    span: Interval
    clinicians: frozenset[str]  # empty = everyone


def exclusions_of(record: PatientRecord, tz: tzinfo) -> list[Exclusion]:
    out = []
    for encounter in record.encounters:
        if is_time_entry(encounter) or encounter.get("status") in (
            "entered-in-error",
            "cancelled",
            "planned",
        ):
            continue
        klass = get_dict(encounter, "class").get("code")
        if klass in _INPATIENT_CLASSES:
            period = get_dict(encounter, "period")
            start = parse_datetime(period.get("start"), tz)
            if start is not None:
                end = parse_datetime(period.get("end"), tz, end=True) or FAR_FUTURE
                out.append(Exclusion((start, end), frozenset()))
            continue
        if encounter.get("status") != "finished":
            continue
        if not billing_codes_of(encounter) - MONTHLY_CARE_MANAGEMENT_CODES:
            continue
        span = span_of(encounter, tz)
        if span is not None and span[0] < span[1]:
            out.append(Exclusion(span, frozenset(participants_of(encounter))))
    return out


def diagnoses_of(record: PatientRecord) -> tuple[Diagnosis, ...]:
    seen: dict[tuple[str, str], Diagnosis] = {}
    for condition in record.conditions:
        clinical = {c for _, c, _ in codings([condition.get("clinicalStatus")])}
        verification = {c for _, c, _ in codings([condition.get("verificationStatus")])}
        if clinical and not clinical & {"active", "recurrence", "relapse"}:
            continue
        if verification & {"refuted", "entered-in-error"}:
            continue
        for system, code, display in codings([condition.get("code")]):
            if system == ICD10CM and code.upper().startswith("F"):
                seen.setdefault((system, code), Diagnosis(system, code, display))
    return tuple(seen.values())


def mrn_of(record: PatientRecord) -> str | None:
    if record.resource is None:
        return None
    for identifier in get_list(record.resource, "identifier"):
        if not isinstance(identifier, dict):
            continue
        if any(c == "MR" for s, c, _ in codings([identifier.get("type")]) if s == _V2_0203):
            value = identifier.get("value")
            return value if isinstance(value, str) else None
    return None


def _overlaps(period: Resource, window: Interval, tz: tzinfo) -> bool:
    start = parse_datetime(period.get("start"), tz) or FAR_PAST
    end = parse_datetime(period.get("end"), tz, end=True) or FAR_FUTURE
    return start < window[1] and end > window[0]


def payer_of(
    record: PatientRecord, window: Interval, rules: BillingRules, tz: tzinfo
) -> tuple[str | None, PayerRules]:
    candidates = []
    for coverage in record.coverages:
        if coverage.get("status") != "active":
            continue
        if not _overlaps(get_dict(coverage, "period"), window, tz):
            continue
        order = coverage.get("order")
        candidates.append((order if isinstance(order, int) else 1_000_000, coverage))
    if not candidates:
        return None, rules.default_payer
    _, coverage = min(candidates, key=lambda pair: pair[0])
    payors = [p for p in get_list(coverage, "payor") if isinstance(p, dict)]
    if not payors:
        return None, rules.default_payer
    payor = payors[0]
    ref = reference_of(payor)
    ident = get_dict(payor, "identifier").get("value")
    display = payor.get("display")
    keys = [k if isinstance(k, str) else None for k in (ref, ident, display)]
    name = next((k for k in (keys[2], keys[0], keys[1]) if k), None)
    return name, rules.payer_rules(*keys)


def care_team_members(
    record: PatientRecord, window: Interval, tz: tzinfo
) -> list[tuple[str | None, list[Any]]]:
    """(member reference, role concepts) of every current care-team participant."""
    members = []
    for team in record.careteams:
        if team.get("status") not in (None, "active"):
            continue
        if not _overlaps(get_dict(team, "period"), window, tz):
            continue
        for participant in get_list(team, "participant"):
            if not isinstance(participant, dict):
                continue
            if not _overlaps(get_dict(participant, "period"), window, tz):
                continue
            members.append((reference_of(participant.get("member")), get_list(participant, "role")))
    return members


def has_initiating_visit(
    record: PatientRecord, since: datetime, until: datetime, rules: BillingRules, tz: tzinfo
) -> bool:
    for encounter in record.encounters:
        if encounter.get("status") != "finished":
            continue
        if not has_coding(get_list(encounter, "type"), rules.initiating_visit_codes):
            continue
        start = parse_datetime(get_dict(encounter, "period").get("start"), tz)
        if start is not None and since <= start < until:
            return True
    return False


def apcm_base_by(record: PatientRecord, month: Month, tz: tzinfo) -> set[str | None]:
    """Practitioners (None = unnamed) billing an APCM base code for this patient in ``month``."""
    out: set[str | None] = set()
    for encounter in record.encounters:
        if encounter.get("status") in ("entered-in-error", "cancelled"):
            continue
        if not billing_codes_of(encounter) & APCM_BASE_CODES:
            continue
        start = parse_datetime(get_dict(encounter, "period").get("start"), tz)
        if start is None or Month.of(start, tz) != month:
            continue
        out.update(participants_of(encounter) or [None])
    return out
