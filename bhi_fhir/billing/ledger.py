"""The time ledger: care-management Encounters → counted minutes → one patient-month's bill.

Pure: resources (plain FHIR JSON dicts, read tolerantly), the month and the practice's
:class:`~bhi_fhir.billing.rules.BillingRules` in; :class:`PatientMonth` records out.

Counting rules (CPT time rules, CMS MLN909432 and the NC Medicaid episode definition):

- A ledger entry is a *finished* Encounter typed BHI_ACTIVITY ``care-management-contact``
  (:mod:`bhi_fhir.billing.representation`). Its time is ``period`` (start–end), or ``start`` +
  ``length`` when ``period.end`` is missing.
- Minutes before documented consent do not count: only time inside an active Consent of scope
  ``treatment`` (from ``dateTime``/``provision.period.start`` to ``provision.period.end``).
- Minutes after discharge do not count: a BHI CarePlan (SNOMED 718347000) with ``period.end``
  blocks time from that end until a later BHI CarePlan starts.
- Time of separately billed services is excluded (AAP News): an Encounter of the patient carrying
  any other CPT/HCPCS code (psychotherapy, an E/M, …) removes its span from the same clinician's
  entries (from everyone's when it names no participant); an entry that itself carries such a
  code is not care-management time at all. Time while the patient is inpatient or in observation
  (class IMP/ACUTE/NONAC/OBSENC) is excluded for everyone (AAP News).
- Overlapping entries of the same clinician for the same patient count once (interval union);
  different clinicians' time adds up.
- Calendar months in the practice's time zone; an entry crossing midnight at month end is split.
  Minutes are whole minutes, rounded down ("at least" codes need the full minutes: CPT descriptors).
- Initial vs subsequent CoCM month: a month is *initial* when the patient had no CoCM service
  (counted CoCM minutes, or a CoCM code billed) in the previous ``episode_gap_months`` (6)
  months — a new episode after ≥ 6 months without CoCM service (CPT; NC Medicaid citing AMA).

Requirements per patient-month (CMS MLN909432), each missing one a :class:`Reason`:
consent documented by the end of the month; an initiating visit (E/M, AWV, IPPE, TCM, 90791)
within ``initiating_visit_lookback_days`` (365) before the episode began, up to the month's end
("new patients or anyone not seen within the past year"); for CoCM, a psychiatric consultant on
the patient's care team; a billing practitioner; enough minutes for a code; and no general-BHI
code in a month that bills CoCM codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from bhi_fhir import fhirjson
from bhi_fhir.billing._time import (
    Interval,
    Month,
    billing_codes_of,
    codings,
    get_dict,
    get_list,
    has_coding,
    intersect,
    is_time_entry,
    parse_datetime,
    participants_of,
    reference_of,
    seconds,
    span_of,
    subtract,
    union,
    versioned_reference,
)
from bhi_fhir.billing.codes import (
    APCM_BASE_CODES,
    MONTHLY_CARE_MANAGEMENT_CODES,
    NON_PHYSICIAN_BHI_QUALIFICATIONS,
    BilledCode,
    MonthKind,
    PayerRules,
    Program,
    minimum_minutes,
    select_codes,
)
from bhi_fhir.billing.representation import (
    CONTACT_MODE_BY_CODE,
    CONTACT_MODE_EXT,
    PROGRAM_EXT,
    ContactMode,
)
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.codes import (
    ICD10CM,
    MENTAL_HEALTH_CARE_PLAN,
    SNOMED,
)
from bhi_fhir.fhirjson import ResourceDict as Resource

__all__ = [
    "Diagnosis",
    "LedgerEntry",
    "Month",
    "PatientMonth",
    "PatientRecord",
    "Reason",
    "Rejected",
    "close_month",
    "group_by_patient",
    "history_start",
    "ledger_entries",
    "patient_of",
    "role_of",
]


_FAR_FUTURE: Final = datetime(9999, 1, 1, tzinfo=UTC)
_FAR_PAST: Final = datetime(1, 1, 2, tzinfo=UTC)
_INPATIENT_CLASSES: Final = frozenset({"IMP", "ACUTE", "NONAC", "OBSENC"})
# CoCM service for the episode rule: the CoCM codes and the APCM CoCM-like add-ons.
_COCM_SERVICE_CODES: Final = frozenset(
    {"99492", "99493", "99494", "G2214", "G0512", "G0568", "G0569"}
)
_V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"


# --------------------------------------------------------------------------- ledger entries


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


# --------------------------------------------------------------------------- patient records

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


# --------------------------------------------------------------------------- patient-month


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a patient-month is not billable: a stable ``code`` and a sentence for people."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    system: str
    code: str
    display: str | None


@dataclass(frozen=True, slots=True)
class PatientMonth:
    """One patient's month in one program: minutes, codes, and whether it can be billed."""

    patient: str
    month: Month
    program: Program
    month_kind: MonthKind | None  # CoCM only
    minutes: int  # counted
    recorded_minutes: int  # recorded, before consent/discharge/exclusions (overlaps merged)
    codes: tuple[BilledCode, ...]
    reasons: tuple[Reason, ...]
    requirements: dict[str, bool]
    entries: tuple[str, ...]  # ledger entries whose time was counted (for Provenance)
    billing_practitioner: str | None
    care_managers: tuple[str, ...]
    diagnoses: tuple[Diagnosis, ...]
    payer: str | None
    mrn: str | None
    encounter_class: Literal["AMB", "VR"]
    episode_start: Month | None
    warnings: tuple[str, ...] = ()
    not_counted: tuple[Rejected, ...] = ()  # entries (or parts) in the month not counted, why

    @property
    def billable(self) -> bool:
        return not self.reasons and bool(self.codes)

    @property
    def identifier_value(self) -> str:
        """The billing Encounter's deterministic business identifier: patient, month, program."""
        return f"billing-{self.program}-{self.patient.split('/')[-1]}-{self.month}"


def _consent_windows(record: PatientRecord, rules: BillingRules, tz: tzinfo) -> list[Interval]:
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
        windows.append((start, end or _FAR_FUTURE))
    return union(windows)


def _discharge_blocks(record: PatientRecord, tz: tzinfo) -> tuple[list[Interval], list[str]]:
    """Spans after a BHI episode ended (until a later BHI CarePlan starts), and warnings.

    The episode ends at the CarePlan's ``period.end`` (a date ends with its day; episode of care: NC
    Medicaid citing AMA). A plan ``completed`` or ``revoked`` without ``period.end`` ended at the
    latest when it was last
    changed (``meta.lastUpdated``); without that either, its end is unknown (a warning)."""
    plans: list[Interval] = []
    warnings: list[str] = []
    for plan in record.careplans:
        if plan.get("status") in ("entered-in-error", "draft"):
            continue
        category = get_list(plan, "category")
        if not any(s == SNOMED and c == MENTAL_HEALTH_CARE_PLAN for s, c, _ in codings(category)):
            continue
        period = get_dict(plan, "period")
        start = parse_datetime(period.get("start"), tz) or _FAR_PAST
        end = parse_datetime(period.get("end"), tz, end=True)
        if end is None and plan.get("status") in ("completed", "revoked"):
            end = parse_datetime(get_dict(plan, "meta").get("lastUpdated"), tz)
            if end is None:
                warnings.append(
                    f"BHI CarePlan {plan.get('status')} without period.end or meta.lastUpdated: "
                    "the episode's end is unknown, time after it cannot be held back (episode of "
                    "care: NC Medicaid citing AMA)"
                )
        plans.append((start, end or _FAR_FUTURE))
    blocks = []
    for _, end in plans:
        if end == _FAR_FUTURE:
            continue
        later = [s for s, _ in plans if s >= end]
        blocks.append((end, min(later) if later else _FAR_FUTURE))
    return union(blocks), warnings


def _after_death(record: PatientRecord, tz: tzinfo) -> tuple[datetime | None, bool]:
    """The first instant after the date of death (Medicare pays no services dated after it), and
    whether the patient is recorded deceased without a date (``deceasedBoolean``)."""
    patient = record.resource or {}
    moment = parse_datetime(patient.get("deceasedDateTime"), tz)
    if moment is not None:
        day = moment.astimezone(tz).date()
        return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1), False
    return None, patient.get("deceasedBoolean") is True


@dataclass(frozen=True, slots=True)
class _Exclusion:
    span: Interval
    clinicians: frozenset[str]  # empty = everyone


def _exclusions(record: PatientRecord, tz: tzinfo) -> list[_Exclusion]:
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
                end = parse_datetime(period.get("end"), tz, end=True) or _FAR_FUTURE
                out.append(_Exclusion((start, end), frozenset()))
            continue
        if encounter.get("status") != "finished":
            continue
        if not billing_codes_of(encounter) - MONTHLY_CARE_MANAGEMENT_CODES:
            continue
        span = span_of(encounter, tz)
        if span is not None and span[0] < span[1]:
            out.append(_Exclusion(span, frozenset(participants_of(encounter))))
    return out


@dataclass(frozen=True, slots=True)
class _Cut:
    """Time of one entry not counted, and why."""

    code: str
    reason: str
    spans: list[Interval]


@dataclass(frozen=True, slots=True)
class _Counted:
    entry: LedgerEntry
    recorded: list[Interval]
    counted: list[Interval]
    cuts: tuple[_Cut, ...] = ()


# Who may count toward a program's minutes: a reason when ``entry`` may not, else None.
Eligibility = Callable[[LedgerEntry], _Cut | None]


def _count(
    entries: Sequence[LedgerEntry],
    consent: Sequence[Interval],
    blocks: Sequence[Interval],
    exclusions: Sequence[_Exclusion],
    eligible: Eligibility,
    after_death: datetime | None,
) -> list[_Counted]:
    out = []
    for entry in entries:
        recorded = [(entry.start, entry.end)]
        refused = eligible(entry)
        if refused is not None:
            out.append(_Counted(entry, recorded, [], (refused,)))
            continue
        cuts: list[_Cut] = []
        counted = intersect(recorded, consent)
        if seconds(counted) < seconds(recorded):
            cuts.append(
                _Cut(
                    "before-consent",
                    "outside a documented consent (BHI services need the patient's verbal or "
                    "written consent, documented in the chart: CMS MLN909432)",
                    subtract(recorded, counted),
                )
            )
        if after_death is not None:
            dead = [(after_death, _FAR_FUTURE)]
            kept = subtract(counted, dead)
            if seconds(kept) < seconds(counted):
                cuts.append(
                    _Cut(
                        "after-death",
                        "dated after the patient's date of death: Medicare does not pay for "
                        "services dated after the date of death (CMS claims processing edits)",
                        intersect(counted, dead),
                    )
                )
            counted = kept
        kept = subtract(counted, blocks)
        if seconds(kept) < seconds(counted):
            cuts.append(
                _Cut(
                    "after-episode-end",
                    "after the patient's BHI episode ended (BHI CarePlan period end or status "
                    "completed/revoked; episode of care: NC Medicaid citing AMA)",
                    subtract(counted, kept),
                )
            )
        counted = kept
        spans = [
            x.span
            for x in exclusions
            if not x.clinicians or entry.clinician is None or entry.clinician in x.clinicians
        ]
        kept = subtract(counted, spans)
        if seconds(kept) < seconds(counted):
            cuts.append(
                _Cut(
                    "excluded-service",
                    "during a separately billed service or an inpatient/observation stay, time "
                    "care-management minutes exclude (AAP News; NCTracks)",
                    subtract(counted, kept),
                )
            )
        out.append(_Counted(entry, recorded, kept, tuple(cuts)))
    return out


def _seconds_in(counted: Sequence[_Counted], window: Interval, *, recorded: bool = False) -> float:
    """Seconds of time inside ``window``: the union of every timed entry's spans, whoever
    logged them (staff meeting together count one person's time), plus the date-only entries
    as recorded (no clock time, so no overlap can be told)."""
    timed: list[Interval] = []
    untimed = 0.0
    for item in counted:
        spans = intersect(item.recorded if recorded else item.counted, [window])
        if item.entry.timed:
            timed.extend(spans)
        else:
            untimed += seconds(spans)
    return seconds(union(timed)) + untimed


def _overlap_warnings(counted: Sequence[_Counted], window: Interval) -> list[str]:
    """One warning per pair of timed entries of different people whose counted time overlaps."""
    items = sorted(
        (c for c in counted if c.entry.timed and intersect(c.counted, [window])),
        key=lambda c: (c.entry.start, c.entry.reference),
    )
    warnings = []
    for i, first in enumerate(items):
        for second in items[i + 1 :]:
            if second.entry.start >= first.entry.end:
                break
            if first.entry.clinician == second.entry.clinician:
                continue
            shared = seconds(intersect(intersect(first.counted, second.counted), [window]))
            if shared >= 60:
                warnings.append(
                    f"{first.entry.reference} ({first.entry.clinician}) and "
                    f"{second.entry.reference} ({second.entry.clinician}) overlap by "
                    f"{int(shared // 60)} min: counted once (staff together count one "
                    "person's time)"
                )
    return warnings


def _service_months(counted: Sequence[_Counted], record: PatientRecord, tz: tzinfo) -> set[Month]:
    months: set[Month] = set()
    for item in counted:
        for start, end in item.counted:
            month = Month.of(start, tz)
            while month.start(tz) < end:
                months.add(month)
                month = month.shift(1)
    for encounter in record.encounters:
        if encounter.get("status") in ("entered-in-error", "cancelled"):
            continue
        if billing_codes_of(encounter) & _COCM_SERVICE_CODES:
            billed = parse_datetime(get_dict(encounter, "period").get("start"), tz)
            if billed is not None:
                months.add(Month.of(billed, tz))
    return months


def _episode(month: Month, service: set[Month], gap: int) -> tuple[MonthKind, Month]:
    """Initial/subsequent, and the first month of the episode ``month`` belongs to."""
    start = month
    while True:
        earlier = [m for m in service if start.shift(-gap) <= m < start]
        if not earlier:
            break
        start = max(earlier)
    return ("initial" if start == month else "subsequent"), start


def _diagnoses(record: PatientRecord) -> tuple[Diagnosis, ...]:
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


def _mrn(record: PatientRecord) -> str | None:
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
    start = parse_datetime(period.get("start"), tz) or _FAR_PAST
    end = parse_datetime(period.get("end"), tz, end=True) or _FAR_FUTURE
    return start < window[1] and end > window[0]


def _payer(
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


def _care_team_members(
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


def _initiating_visit(
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


def _apcm_base_by(record: PatientRecord, month: Month, tz: tzinfo) -> set[str | None]:
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


Role = Literal["care-manager", "psychiatric-consultant", "billing-practitioner", "other"]


def role_of(
    clinician: str, members: Sequence[tuple[str | None, list[Any]]], rules: BillingRules
) -> Role:
    """The care-team role of whoever logged an entry (CMS MLN909432, care team).

    The practice plan's team first (``care_managers``, ``psychiatric_consultants``, the billing
    practitioners), then the role codings of the patient's CareTeam at that time
    (``care_manager_roles``, ``psychiatric_consultant_roles``)."""
    if clinician in rules.care_managers:
        return "care-manager"
    if clinician in rules.psychiatric_consultants:
        return "psychiatric-consultant"
    if clinician == rules.billing_practitioner or clinician in rules.billing_practitioners:
        return "billing-practitioner"
    roles = [role for ref, concepts in members if ref == clinician for role in concepts]
    if has_coding(roles, rules.care_manager_roles):
        return "care-manager"
    if has_coding(roles, rules.psychiatric_consultant_roles):
        return "psychiatric-consultant"
    return "other"


_ROLE_TEXT: Final[dict[Role, str]] = {
    "psychiatric-consultant": "the psychiatric consultant's",
    "billing-practitioner": "the billing practitioner's",
    "other": "not a care manager's (neither in the practice plan's team.care_managers nor with "
    "a care-manager role on the CareTeam)",
    "care-manager": "a care manager's",
}


def _eligibility(
    record: PatientRecord, rules: BillingRules, billing_practitioner: str | None, tz: tzinfo
) -> Eligibility:
    """Whose minutes count (CPT descriptors; CMS MLN909432):

    - CoCM (99492/99493/99494, G2214, and the APCM add-ons valued like them): behavioral health
      care manager time only; the psychiatric consultant's and the billing practitioner's work
      is paid within the codes, not counted toward the minutes.
    - General BHI billed as 99484: clinical staff time directed by the billing practitioner —
      the care managers' — and the billing practitioner's own time when they do that work
      themselves (CMS FAQ on care-management clinical staff time, 18 Jan 2017).
    - General BHI billed as G0323: the billing clinical psychologist/CSW/MHC/MFT's own time.
    """
    g0323 = rules.qualification_of(billing_practitioner) in NON_PHYSICIAN_BHI_QUALIFICATIONS

    def eligible(entry: LedgerEntry) -> _Cut | None:
        program = entry.program or rules.program
        who = entry.clinician
        if who is None:
            return _Cut("no-performer", "names no participant: whose time it is is unknown", [])
        role = role_of(who, _care_team_members(record, (entry.start, entry.end), tz), rules)
        if program == "cocm":
            if role == "care-manager":
                return None
            return _Cut(
                f"not-care-manager:{role}",
                f"{who}'s time is {_ROLE_TEXT[role]}: CoCM minutes are behavioral health care "
                "manager time (CPT descriptors; CMS MLN909432)",
                [],
            )
        if g0323:
            if who == billing_practitioner:
                return None
            return _Cut(
                "not-billing-clinician",
                f"{who}'s time: G0323 counts the billing clinical psychologist/CSW/MHC/MFT's own "
                "time (the G0323 descriptor)",
                [],
            )
        if role == "care-manager" or who == billing_practitioner:
            return None
        return _Cut(
            f"not-clinical-staff:{role}",
            f"{who}'s time is {_ROLE_TEXT[role]}: 99484 counts clinical staff time directed by "
            "the billing practitioner (CMS MLN909432)",
            [],
        )

    return eligible


def _billing_practitioner(
    members: Sequence[tuple[str | None, list[Any]]], rules: BillingRules
) -> str | None:
    return next(
        (ref for ref, _ in members if ref is not None and ref in rules.billing_practitioners),
        rules.billing_practitioner,
    )


def _counted(
    record: PatientRecord,
    rules: BillingRules,
    billing_practitioner: str | None,
    tz: tzinfo,
) -> tuple[list[_Counted], list[Rejected], list[str], bool]:
    """The ledger entries with their counted time; rejections; warnings; and whether the
    patient is recorded deceased without a date."""
    entries, rejected = ledger_entries(record.encounters, tz)
    consent = _consent_windows(record, rules, tz)
    blocks, warnings = _discharge_blocks(record, tz)
    after_death, death_undated = _after_death(record, tz)
    counted = _count(
        entries,
        consent,
        blocks,
        _exclusions(record, tz),
        _eligibility(record, rules, billing_practitioner, tz),
        after_death,
    )
    return counted, rejected, warnings, death_undated


def _not_counted(counted: Sequence[_Counted], window: Interval) -> list[Rejected]:
    """Per entry in the month, each reason some of its time is not counted."""
    out = []
    for item in sorted(counted, key=_entry_order):
        in_month = intersect(item.recorded, [window])
        if not in_month:
            continue
        for cut in item.cuts:
            spans = intersect(cut.spans, [window]) if cut.spans else in_month
            minutes = int(seconds(spans) // 60)
            out.append(Rejected(item.entry.reference, cut.reason, cut.code, minutes))
    return out


def close_month(
    record: PatientRecord, month: Month, rules: BillingRules
) -> tuple[list[PatientMonth], list[Rejected]]:
    """One :class:`PatientMonth` per program with recorded time in ``month``; the entries (or
    parts of them) not counted, each with its reason."""
    tz = ZoneInfo(rules.timezone)
    window = (month.start(tz), month.end(tz))
    members = _care_team_members(record, window, tz)
    billing_practitioner = _billing_practitioner(members, rules)
    counted, rejected, episode_warnings, death_undated = _counted(
        record, rules, billing_practitioner, tz
    )
    consultant = any(
        (ref is not None and ref in rules.psychiatric_consultants)
        or has_coding(roles, rules.psychiatric_consultant_roles)
        for ref, roles in members
    )
    consent_by_month_end = any(
        start < window[1] for start, _ in _consent_windows(record, rules, tz)
    )
    payer_name, payer_rules = _payer(record, window, rules, tz)
    apcm_base = _apcm_base_by(record, month, tz)
    diagnoses = _diagnoses(record)
    mrn = _mrn(record)

    results: list[PatientMonth] = []
    programs: tuple[Program, ...] = ("cocm", "bhi")
    for program in programs:
        mine = [c for c in counted if (c.entry.program or rules.program) == program]
        if not any(intersect(c.recorded, [window]) for c in mine):
            continue
        minutes = int(_seconds_in(mine, window) // 60)
        in_month = [c for c in mine if intersect(c.counted, [window])]
        service = _service_months(mine, record, tz) | {month}
        episode_kind, episode_start = _episode(month, service, rules.episode_gap_months)
        kind: MonthKind | None = episode_kind if program == "cocm" else None

        warnings: list[str] = [*episode_warnings, *_overlap_warnings(mine, window)]
        untimed = [c for c in in_month if not c.entry.timed]
        if untimed:
            warnings.append(
                f"{len(untimed)} entries give a date and a duration but no clock time: added as "
                "recorded, not checked for overlap with other entries"
            )
        same_practitioner_apcm = billing_practitioner is not None and (
            billing_practitioner in apcm_base
        )
        if apcm_base and not same_practitioner_apcm:
            warnings.append(
                "an APCM base code is billed this month by another practitioner: the APCM "
                "behavioral-health add-ons (G0568/G0569/G0570) go only with the same "
                "practitioner's APCM base code in the same month"
            )
        codes = select_codes(
            program,
            kind or "subsequent",
            minutes,
            setting=rules.setting,
            payer=payer_rules,
            clinician=rules.qualification_of(billing_practitioner),
            apcm_base_same_practitioner=same_practitioner_apcm,
            year=month.year,
            thresholds=rules.thresholds,
        )

        reasons: list[Reason] = []
        if not codes:
            least, code = minimum_minutes(program, kind or "subsequent", rules.thresholds)
            reasons.append(
                Reason(
                    "below-threshold",
                    f"{minutes} counted minutes; {code} needs at least {least}",
                )
            )
        if not consent_by_month_end:
            reasons.append(
                Reason(
                    "no-consent",
                    "no consent documented by the end of the month (BHI services need the "
                    "patient's verbal or written consent, documented in the chart: CMS "
                    "MLN909432)",
                )
            )
        since = episode_start.start(tz) - timedelta(days=rules.initiating_visit_lookback_days)
        visit = _initiating_visit(record, since, window[1], rules, tz)
        if not visit:
            reasons.append(
                Reason(
                    "no-initiating-visit",
                    "no initiating visit (E/M, AWV, IPPE, TCM or 90791) within "
                    f"{rules.initiating_visit_lookback_days} days before the episode began "
                    f"({episode_start}): new patients and anyone not seen within the past year "
                    "need one (CMS MLN909432)",
                )
            )
        requirements = {"consent": consent_by_month_end, "initiating_visit": visit}
        if program == "cocm":
            requirements["psychiatric_consultant"] = consultant
            if not consultant:
                reasons.append(
                    Reason(
                        "no-psychiatric-consultant",
                        "no psychiatric consultant on the patient's care team (a CoCM team has "
                        "one: CMS MLN909432)",
                    )
                )
        if death_undated:
            reasons.append(
                Reason(
                    "deceased-date-unknown",
                    "the patient is recorded deceased without a date: whether this time is "
                    "dated after the date of death cannot be checked (Medicare does not pay for "
                    "services dated after the date of death)",
                )
            )
        if billing_practitioner is None:
            reasons.append(
                Reason("no-billing-practitioner", "no billing practitioner (practice plan)")
            )
        if not diagnoses:
            warnings.append("no behavioral-health diagnosis (ICD-10-CM F code) on file")

        care_managers = tuple(
            dict.fromkeys(
                c.entry.clinician
                for c in sorted(in_month, key=lambda c: c.entry.start)
                if c.entry.clinician is not None and c.entry.clinician != billing_practitioner
            )
        )
        results.append(
            PatientMonth(
                patient=record.patient,
                month=month,
                program=program,
                month_kind=kind,
                minutes=minutes,
                recorded_minutes=int(_seconds_in(mine, window, recorded=True) // 60),
                codes=tuple(codes),
                reasons=tuple(reasons),
                requirements=requirements,
                entries=tuple(c.entry.reference for c in sorted(in_month, key=_entry_order)),
                billing_practitioner=billing_practitioner,
                care_managers=care_managers,
                diagnoses=diagnoses,
                payer=payer_name,
                mrn=mrn,
                encounter_class="VR"
                if in_month and all(c.entry.virtual for c in in_month)
                else "AMB",
                episode_start=episode_start,
                warnings=tuple(warnings),
                not_counted=tuple(_not_counted(mine, window)),
            )
        )
    rejected = [r for r in rejected if _in_month(r, record, window, tz)]
    return _no_bhi_with_cocm(results), rejected + [r for m in results for r in m.not_counted]


def history_start(record: PatientRecord, month: Month, rules: BillingRules) -> datetime:
    """The earliest instant :func:`close_month` needs the patient's Encounters from, judged on
    the Encounters in ``record``: every program's episode start ``E`` must be decided (the
    ``episode_gap_months`` before ``E`` seen, NC Medicaid, AMA) and the initiating-visit window
    (``initiating_visit_lookback_days`` before ``E``, CMS MLN909432) covered.

    A server fetch starts at ``month - gap - lookback``; while this returns an earlier instant
    than what was fetched, the episode reaches further back and more must be read.
    """
    tz = ZoneInfo(rules.timezone)
    lookback = timedelta(days=rules.initiating_visit_lookback_days)
    gap = rules.episode_gap_months
    members = _care_team_members(record, (month.start(tz), month.end(tz)), tz)
    counted, _, _, _ = _counted(record, rules, _billing_practitioner(members, rules), tz)
    earliest = min(month.shift(-gap).start(tz), month.start(tz) - lookback)
    programs: tuple[Program, ...] = ("cocm", "bhi")
    for program in programs:
        mine = [c for c in counted if (c.entry.program or rules.program) == program]
        _, start = _episode(month, _service_months(mine, record, tz) | {month}, gap)
        earliest = min(earliest, start.shift(-gap).start(tz), start.start(tz) - lookback)
    return earliest


def _entry_order(item: _Counted) -> tuple[datetime, str]:
    return item.entry.start, item.entry.reference


def _in_month(rejected: Rejected, record: PatientRecord, window: Interval, tz: tzinfo) -> bool:
    for encounter in record.encounters:
        if versioned_reference(encounter) == rejected.reference:
            start = parse_datetime(get_dict(encounter, "period").get("start"), tz)
            return start is None or window[0] <= start < window[1]
    return True


def _no_bhi_with_cocm(results: list[PatientMonth]) -> list[PatientMonth]:
    """99484/G0323 never with CoCM codes for the same patient-month (vendor billing guides; to be
    confirmed in the CPT text)."""
    if not any(r.program == "cocm" and r.codes for r in results):
        return results
    out = []
    for result in results:
        if result.program == "bhi" and result.codes:
            reason = Reason(
                "cocm-same-month",
                "general BHI (99484/G0323) is not billed with CoCM codes for the same "
                "patient-month (vendor billing guides)",
            )
            result = replace(result, reasons=(*result.reasons, reason))
        out.append(result)
    return out
