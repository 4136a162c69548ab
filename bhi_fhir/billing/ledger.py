"""The time ledger: care-management Encounters → counted minutes → one patient-month's bill.

Pure: resources (plain FHIR JSON dicts, read tolerantly), the month and the practice's
:class:`~bhi_fhir.billing.rules.BillingRules` in; :class:`PatientMonth` records out.

Counting rules (bhi-domain.md §4.2, §4.3, §2.2; issue 6):

- A ledger entry is a *finished* Encounter typed BHI_ACTIVITY ``care-management-contact``
  (:mod:`bhi_fhir.billing.representation`). Its time is ``period`` (start–end), or ``start`` +
  ``length`` when ``period.end`` is missing.
- Minutes before documented consent do not count: only time inside an active Consent of scope
  ``treatment`` (from ``dateTime``/``provision.period.start`` to ``provision.period.end``).
- Minutes after discharge do not count: a BHI CarePlan (SNOMED 718347000) with ``period.end``
  blocks time from that end until a later BHI CarePlan starts.
- Time of separately billed services is excluded (§4.2): an Encounter of the patient carrying
  any other CPT/HCPCS code (psychotherapy, an E/M, …) removes its span from the same clinician's
  entries (from everyone's when it names no participant); an entry that itself carries such a
  code is not care-management time at all. Time while the patient is inpatient or in observation
  (class IMP/ACUTE/NONAC/OBSENC) is excluded for everyone (§4.2, AAP News).
- Overlapping entries of the same clinician for the same patient count once (interval union);
  different clinicians' time adds up.
- Calendar months in the practice's time zone; an entry crossing midnight at month end is split.
  Minutes are whole minutes, rounded down ("at least" codes need the full minutes, §4.2).
- Initial vs subsequent CoCM month: a month is *initial* when the patient had no CoCM service
  (counted CoCM minutes, or a CoCM code billed) in the previous ``episode_gap_months`` (6)
  months — a new episode after ≥ 6 months without CoCM service (§2.2, §7.3).

Requirements per patient-month (§4.3), each missing one a :class:`Reason`:
consent documented by the end of the month; an initiating visit (E/M, AWV, IPPE, TCM, 90791)
within ``initiating_visit_lookback_days`` (365) before the episode began, up to the month's end
("new patients or anyone not seen within the past year"); for CoCM, a psychiatric consultant on
the patient's care team; a billing practitioner; enough minutes for a code; and no general-BHI
code in a month that bills CoCM codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

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
]

Resource = dict[str, Any]

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

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


@dataclass(frozen=True, slots=True)
class Rejected:
    """A care-management Encounter that is not counted, and why."""

    reference: str
    reason: str


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
    return LedgerEntry(
        reference=reference,
        patient=patient,
        clinician=participants[0] if participants else None,
        start=span[0],
        end=span[1],
        program=program,
        mode=mode,
        virtual=virtual,
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
    kind = resource.get("resourceType")
    if kind == "Patient":
        rid = resource.get("id")
        return f"Patient/{rid}" if isinstance(rid, str) and rid else None
    key = _PATIENT_KEYS.get(str(kind))
    if key is None:
        return None
    ref = reference_of(resource.get(key))
    return ref if ref is not None and ref.startswith("Patient/") else None


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


def _discharge_blocks(record: PatientRecord, tz: tzinfo) -> list[Interval]:
    plans: list[Interval] = []
    for plan in record.careplans:
        if plan.get("status") in ("entered-in-error", "draft"):
            continue
        category = get_list(plan, "category")
        if not any(s == SNOMED and c == MENTAL_HEALTH_CARE_PLAN for s, c, _ in codings(category)):
            continue
        period = get_dict(plan, "period")
        start = parse_datetime(period.get("start"), tz) or _FAR_PAST
        end = parse_datetime(period.get("end"), tz, end=True) or _FAR_FUTURE
        plans.append((start, end))
    blocks = []
    for _, end in plans:
        if end == _FAR_FUTURE:
            continue
        later = [s for s, _ in plans if s >= end]
        blocks.append((end, min(later) if later else _FAR_FUTURE))
    return union(blocks)


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
class _Counted:
    entry: LedgerEntry
    recorded: list[Interval]
    counted: list[Interval]


def _count(
    entries: Sequence[LedgerEntry],
    consent: Sequence[Interval],
    blocks: Sequence[Interval],
    exclusions: Sequence[_Exclusion],
) -> list[_Counted]:
    out = []
    for entry in entries:
        recorded = [(entry.start, entry.end)]
        counted = intersect(recorded, consent)
        counted = subtract(counted, blocks)
        cuts = [
            x.span
            for x in exclusions
            if not x.clinicians or entry.clinician is None or entry.clinician in x.clinicians
        ]
        counted = subtract(counted, cuts)
        out.append(_Counted(entry, recorded, counted))
    return out


def _by_clinician_in(
    counted: Sequence[_Counted], window: Interval, *, recorded: bool = False
) -> list[Interval]:
    """Union per clinician inside ``window``; clinicians' unions concatenated."""
    per: dict[str | None, list[Interval]] = {}
    for item in counted:
        spans = item.recorded if recorded else item.counted
        per.setdefault(item.entry.clinician, []).extend(intersect(spans, [window]))
    return [span for spans in per.values() for span in union(spans)]


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


def close_month(
    record: PatientRecord, month: Month, rules: BillingRules
) -> tuple[list[PatientMonth], list[Rejected]]:
    """One :class:`PatientMonth` per program with recorded time in ``month``."""
    tz = ZoneInfo(rules.timezone)
    window = (month.start(tz), month.end(tz))
    entries, rejected = ledger_entries(record.encounters, tz)
    consent = _consent_windows(record, rules, tz)
    counted = _count(entries, consent, _discharge_blocks(record, tz), _exclusions(record, tz))

    members = _care_team_members(record, window, tz)
    billing_practitioner = next(
        (ref for ref, _ in members if ref is not None and ref in rules.billing_practitioners),
        rules.billing_practitioner,
    )
    consultant = any(
        (ref is not None and ref in rules.psychiatric_consultants)
        or has_coding(roles, rules.psychiatric_consultant_roles)
        for ref, roles in members
    )
    consent_by_month_end = any(start < window[1] for start, _ in consent)
    payer_name, payer_rules = _payer(record, window, rules, tz)
    apcm_base = _apcm_base_by(record, month, tz)
    diagnoses = _diagnoses(record)
    mrn = _mrn(record)

    results: list[PatientMonth] = []
    programs: tuple[Program, ...] = ("cocm", "bhi")
    for program in programs:
        mine = [c for c in counted if (c.entry.program or rules.program) == program]
        recorded_spans = _by_clinician_in(mine, window, recorded=True)
        if not recorded_spans:
            continue
        spans = _by_clinician_in(mine, window)
        minutes = int(seconds(spans) // 60)
        in_month = [c for c in mine if intersect(c.counted, [window])]
        service = _service_months(mine, record, tz) | {month}
        episode_kind, episode_start = _episode(month, service, rules.episode_gap_months)
        kind: MonthKind | None = episode_kind if program == "cocm" else None

        warnings: list[str] = []
        same_practitioner_apcm = billing_practitioner is not None and (
            billing_practitioner in apcm_base
        )
        if apcm_base and not same_practitioner_apcm:
            warnings.append(
                "an APCM base code is billed this month by another practitioner: the APCM "
                "behavioral-health add-on needs the same practitioner (§4.1)"
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
                    f"{minutes} counted minutes; {code} needs at least {least} (§4.1)",
                )
            )
        if not consent_by_month_end:
            reasons.append(
                Reason("no-consent", "no consent documented by the end of the month (§4.3)")
            )
        since = episode_start.start(tz) - timedelta(days=rules.initiating_visit_lookback_days)
        visit = _initiating_visit(record, since, window[1], rules, tz)
        if not visit:
            reasons.append(
                Reason(
                    "no-initiating-visit",
                    "no initiating visit (E/M, AWV, IPPE, TCM or 90791) within "
                    f"{rules.initiating_visit_lookback_days} days before the episode began "
                    f"({episode_start}) (§4.3)",
                )
            )
        requirements = {"consent": consent_by_month_end, "initiating_visit": visit}
        if program == "cocm":
            requirements["psychiatric_consultant"] = consultant
            if not consultant:
                reasons.append(
                    Reason(
                        "no-psychiatric-consultant",
                        "no psychiatric consultant on the patient's care team (§4.3 Team)",
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
        if rules.care_managers:
            known = {
                *rules.care_managers,
                *rules.psychiatric_consultants,
                *rules.billing_practitioners,
            }
            others = [m for m in care_managers if m not in known]
            if others:
                warnings.append(
                    f"time counted from {', '.join(others)}, not a care manager of the practice "
                    "plan (§4.3 Team: the BHCM works under the billing practitioner)"
                )
        results.append(
            PatientMonth(
                patient=record.patient,
                month=month,
                program=program,
                month_kind=kind,
                minutes=minutes,
                recorded_minutes=int(seconds(recorded_spans) // 60),
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
            )
        )
    return _no_bhi_with_cocm(results), [r for r in rejected if _in_month(r, record, window, tz)]


def history_start(record: PatientRecord, month: Month, rules: BillingRules) -> datetime:
    """The earliest instant :func:`close_month` needs the patient's Encounters from, judged on
    the Encounters in ``record``: every program's episode start ``E`` must be decided (the
    ``episode_gap_months`` before ``E`` seen, §2.2) and the initiating-visit window
    (``initiating_visit_lookback_days`` before ``E``, §4.3) covered.

    A server fetch starts at ``month - gap - lookback``; while this returns an earlier instant
    than what was fetched, the episode reaches further back and more must be read.
    """
    tz = ZoneInfo(rules.timezone)
    lookback = timedelta(days=rules.initiating_visit_lookback_days)
    gap = rules.episode_gap_months
    entries, _ = ledger_entries(record.encounters, tz)
    consent = _consent_windows(record, rules, tz)
    counted = _count(entries, consent, _discharge_blocks(record, tz), _exclusions(record, tz))
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
    """99484/G0323 never with CoCM codes for the same patient-month (§4.3 Same month)."""
    if not any(r.program == "cocm" and r.codes for r in results):
        return results
    out = []
    for result in results:
        if result.program == "bhi" and result.codes:
            reason = Reason(
                "cocm-same-month",
                "general BHI (99484/G0323) is not billed with CoCM codes for the same "
                "patient-month (§4.3)",
            )
            result = replace(result, reasons=(*result.reasons, reason))
        out.append(result)
    return out
