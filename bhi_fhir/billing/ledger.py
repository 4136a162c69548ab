"""The time ledger: care-management Encounters → counted minutes → one patient-month's bill.

Pure: resources (plain FHIR JSON dicts, read tolerantly), the month and the practice's
:class:`~bhi_fhir.billing.rules.BillingRules` in; :class:`PatientMonth` records out.

The steps, each in its own module: reading the ledger entries (:mod:`bhi_fhir.billing.entries`),
reading the patient's record (:mod:`bhi_fhir.billing.record`), deciding which minutes count
(:mod:`bhi_fhir.billing.counting`) and which episode a month belongs to
(:mod:`bhi_fhir.billing.episodes`). Here: the month's codes and whether it can be billed.
Calendar months are the practice's time zone; an entry crossing midnight at month end is split.

Requirements per patient-month (CMS MLN909432), each missing one a :class:`Reason`:
consent documented by the end of the month; an initiating visit (E/M, AWV, IPPE, TCM, 90791)
within ``initiating_visit_lookback_days`` (365) before the episode began, up to the month's end
("new patients or anyone not seen within the past year"); for CoCM, a psychiatric consultant on
the patient's care team; a billing practitioner; enough minutes for a code; and no general-BHI
code in a month that bills CoCM codes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from bhi_fhir.billing._time import (
    Interval,
    Month,
    get_dict,
    has_coding,
    intersect,
    parse_datetime,
    versioned_reference,
)
from bhi_fhir.billing.codes import (
    BilledCode,
    MonthKind,
    PayerRules,
    Program,
    minimum_minutes,
    select_codes,
)
from bhi_fhir.billing.counting import (
    Counted,
    billing_practitioner_of,
    count_record,
    entry_order,
    not_counted_in,
    overlap_warnings,
    seconds_in,
)
from bhi_fhir.billing.entries import Rejected
from bhi_fhir.billing.episodes import episode_of, service_months
from bhi_fhir.billing.record import (
    Diagnosis,
    PatientRecord,
    apcm_base_by,
    care_team_members,
    consent_windows,
    diagnoses_of,
    group_by_patient,
    has_initiating_visit,
    mrn_of,
    payer_of,
)
from bhi_fhir.billing.rules import BillingRules

# Month, PatientRecord, Rejected and group_by_patient are the inputs and outputs of
# close_month, exported with it for its callers.
__all__ = [
    "Month",
    "PatientMonth",
    "PatientRecord",
    "Reason",
    "Rejected",
    "close_month",
    "group_by_patient",
    "history_start",
]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a patient-month is not billable: a stable ``code`` and a sentence for people."""

    code: str
    text: str


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


def close_month(
    record: PatientRecord, month: Month, rules: BillingRules
) -> tuple[list[PatientMonth], list[Rejected]]:
    """One :class:`PatientMonth` per program with recorded time in ``month``; the entries (or
    parts of them) not counted, each with its reason."""
    tz = ZoneInfo(rules.timezone)
    window = (month.start(tz), month.end(tz))
    members = care_team_members(record, window, tz)
    billing_practitioner = billing_practitioner_of(members, rules)
    counted, rejected, episode_warnings, death_undated = count_record(
        record, rules, billing_practitioner, tz
    )
    payer_name, payer_rules = payer_of(record, window, rules, tz)
    facts = _MonthFacts(
        record=record,
        month=month,
        rules=rules,
        tz=tz,
        window=window,
        counted=counted,
        episode_warnings=episode_warnings,
        death_undated=death_undated,
        billing_practitioner=billing_practitioner,
        consultant=any(
            (ref is not None and ref in rules.psychiatric_consultants)
            or has_coding(roles, rules.psychiatric_consultant_roles)
            for ref, roles in members
        ),
        consent_by_month_end=any(
            start < window[1] for start, _ in consent_windows(record, rules, tz)
        ),
        payer_name=payer_name,
        payer_rules=payer_rules,
        apcm_base=apcm_base_by(record, month, tz),
        diagnoses=diagnoses_of(record),
        mrn=mrn_of(record),
    )
    programs: tuple[Program, ...] = ("cocm", "bhi")
    results = [bill for p in programs if (bill := _program_month(facts, p)) is not None]
    rejected = [r for r in rejected if _in_month(r, record, window, tz)]
    return _no_bhi_with_cocm(results), rejected + [r for m in results for r in m.not_counted]


@dataclass(frozen=True, slots=True)
class _MonthFacts:
    """What :func:`close_month` reads once for a patient-month, the same for each program."""

    record: PatientRecord
    month: Month
    rules: BillingRules
    tz: tzinfo
    window: Interval
    counted: list[Counted]
    episode_warnings: list[str]
    death_undated: bool  # recorded deceased without a date
    billing_practitioner: str | None
    consultant: bool  # a psychiatric consultant on the care team
    consent_by_month_end: bool
    payer_name: str | None
    payer_rules: PayerRules
    apcm_base: set[str | None]  # who billed an APCM base code this month (None: unnamed)
    diagnoses: tuple[Diagnosis, ...]
    mrn: str | None


def _program_month(f: _MonthFacts, program: Program) -> PatientMonth | None:
    """The month in one program: its minutes and codes, and what keeps it from being billed;
    None when the program has no recorded time in the month."""
    window, tz, rules = f.window, f.tz, f.rules
    mine = [c for c in f.counted if (c.entry.program or rules.program) == program]
    if not any(intersect(c.recorded, [window]) for c in mine):
        return None
    minutes = int(seconds_in(mine, window) // 60)
    in_month = [c for c in mine if intersect(c.counted, [window])]
    service = service_months(mine, f.record, tz) | {f.month}
    episode_kind, episode_start = episode_of(f.month, service, rules.episode_gap_months)
    kind: MonthKind | None = episode_kind if program == "cocm" else None

    warnings: list[str] = [*f.episode_warnings, *overlap_warnings(mine, window)]
    untimed = [c for c in in_month if not c.entry.timed]
    if untimed:
        warnings.append(
            f"{len(untimed)} entries give a date and a duration but no clock time: added as "
            "recorded, not checked for overlap with other entries"
        )
    same_practitioner_apcm = f.billing_practitioner is not None and (
        f.billing_practitioner in f.apcm_base
    )
    if f.apcm_base and not same_practitioner_apcm:
        warnings.append(
            "an APCM base code is billed this month by another practitioner: the APCM "
            "behavioral-health add-ons (G0568/G0569/G0570) go only with the same "
            "practitioner's APCM base code in the same month"
        )
    if not f.diagnoses:
        warnings.append("no behavioral-health diagnosis (ICD-10-CM F code) on file")
    codes = select_codes(
        program,
        kind or "subsequent",
        minutes,
        setting=rules.setting,
        payer=f.payer_rules,
        clinician=rules.qualification_of(f.billing_practitioner),
        apcm_base_same_practitioner=same_practitioner_apcm,
        year=f.month.year,
        thresholds=rules.thresholds,
    )
    reasons, requirements = _requirements(f, program, kind, minutes, bool(codes), episode_start)
    care_managers = tuple(
        dict.fromkeys(
            c.entry.clinician
            for c in sorted(in_month, key=lambda c: c.entry.start)
            if c.entry.clinician is not None and c.entry.clinician != f.billing_practitioner
        )
    )
    return PatientMonth(
        patient=f.record.patient,
        month=f.month,
        program=program,
        month_kind=kind,
        minutes=minutes,
        recorded_minutes=int(seconds_in(mine, window, recorded=True) // 60),
        codes=tuple(codes),
        reasons=tuple(reasons),
        requirements=requirements,
        entries=tuple(c.entry.reference for c in sorted(in_month, key=entry_order)),
        billing_practitioner=f.billing_practitioner,
        care_managers=care_managers,
        diagnoses=f.diagnoses,
        payer=f.payer_name,
        mrn=f.mrn,
        encounter_class="VR" if in_month and all(c.entry.virtual for c in in_month) else "AMB",
        episode_start=episode_start,
        warnings=tuple(warnings),
        not_counted=tuple(not_counted_in(mine, window)),
    )


def _requirements(
    f: _MonthFacts,
    program: Program,
    kind: MonthKind | None,
    minutes: int,
    coded: bool,
    episode_start: Month,
) -> tuple[list[Reason], dict[str, bool]]:
    """Each requirement of a billable month that is not met, as a :class:`Reason`, and the
    requirements checked (consent, initiating visit and, for CoCM, the psychiatric consultant)."""
    rules, tz = f.rules, f.tz
    reasons: list[Reason] = []
    if not coded:
        least, code = minimum_minutes(program, kind or "subsequent", rules.thresholds)
        reasons.append(
            Reason(
                "below-threshold",
                f"{minutes} counted minutes; {code} needs at least {least}",
            )
        )
    if not f.consent_by_month_end:
        reasons.append(
            Reason(
                "no-consent",
                "no consent documented by the end of the month (BHI services need the "
                "patient's verbal or written consent, documented in the chart: CMS "
                "MLN909432)",
            )
        )
    since = episode_start.start(tz) - timedelta(days=rules.initiating_visit_lookback_days)
    visit = has_initiating_visit(f.record, since, f.window[1], rules, tz)
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
    requirements = {"consent": f.consent_by_month_end, "initiating_visit": visit}
    if program == "cocm":
        requirements["psychiatric_consultant"] = f.consultant
        if not f.consultant:
            reasons.append(
                Reason(
                    "no-psychiatric-consultant",
                    "no psychiatric consultant on the patient's care team (a CoCM team has "
                    "one: CMS MLN909432)",
                )
            )
    if f.death_undated:
        reasons.append(
            Reason(
                "deceased-date-unknown",
                "the patient is recorded deceased without a date: whether this time is "
                "dated after the date of death cannot be checked (Medicare does not pay for "
                "services dated after the date of death)",
            )
        )
    if f.billing_practitioner is None:
        reasons.append(Reason("no-billing-practitioner", "no billing practitioner (practice plan)"))
    return reasons, requirements


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
    members = care_team_members(record, (month.start(tz), month.end(tz)), tz)
    counted, _, _, _ = count_record(record, rules, billing_practitioner_of(members, rules), tz)
    earliest = min(month.shift(-gap).start(tz), month.start(tz) - lookback)
    programs: tuple[Program, ...] = ("cocm", "bhi")
    for program in programs:
        mine = [c for c in counted if (c.entry.program or rules.program) == program]
        _, start = episode_of(month, service_months(mine, record, tz) | {month}, gap)
        earliest = min(earliest, start.shift(-gap).start(tz), start.start(tz) - lookback)
    return earliest


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
