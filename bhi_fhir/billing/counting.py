"""Which recorded minutes count, and why the others do not.

Pure. Counting rules (CPT time rules, CMS MLN909432):

- Whose time counts depends on the program (:func:`eligibility`): CoCM minutes are behavioral
  health care manager time; 99484 counts clinical staff time directed by the billing
  practitioner; G0323 the billing clinician's own time.
- Minutes before documented consent do not count: only time inside an active Consent of scope
  ``treatment`` (from ``dateTime``/``provision.period.start`` to ``provision.period.end``).
- Minutes after discharge do not count: a BHI CarePlan (SNOMED 718347000) with ``period.end``
  blocks time from that end until a later BHI CarePlan starts.
- Minutes dated after the patient's date of death do not count.
- Time of separately billed services is excluded (AAP News): an Encounter of the patient carrying
  any other CPT/HCPCS code removes its span from the same clinician's entries (from everyone's
  when it names no participant). Time while the patient is inpatient or in observation (class
  IMP/ACUTE/NONAC/OBSENC) is excluded for everyone (AAP News).
- Overlapping entries count once (interval union, :func:`seconds_in`): staff meeting together
  count one person's time.
- Minutes are whole minutes, rounded down ("at least" codes need the full minutes: CPT
  descriptors).

Each part of an entry not counted is a :class:`Cut` with a stable code and a sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final, Literal

from bhi_fhir.billing._time import (
    FAR_FUTURE,
    Interval,
    has_coding,
    intersect,
    seconds,
    subtract,
    union,
)
from bhi_fhir.billing.codes import NON_PHYSICIAN_BHI_QUALIFICATIONS
from bhi_fhir.billing.entries import LedgerEntry, Rejected, ledger_entries
from bhi_fhir.billing.record import (
    Exclusion,
    PatientRecord,
    after_death_of,
    care_team_members,
    consent_windows,
    discharge_blocks,
    exclusions_of,
)
from bhi_fhir.billing.rules import BillingRules

__all__ = [
    "Counted",
    "Cut",
    "Eligibility",
    "Role",
    "billing_practitioner_of",
    "count_entries",
    "count_record",
    "eligibility",
    "entry_order",
    "not_counted_in",
    "overlap_warnings",
    "role_of",
    "seconds_in",
]


@dataclass(frozen=True, slots=True)
class Cut:
    """Time of one entry not counted, and why."""

    code: str
    reason: str
    spans: list[Interval]


@dataclass(frozen=True, slots=True)
class Counted:
    entry: LedgerEntry
    recorded: list[Interval]
    counted: list[Interval]
    cuts: tuple[Cut, ...] = ()


# Who may count toward a program's minutes: a reason when ``entry`` may not, else None.
Eligibility = Callable[[LedgerEntry], Cut | None]


def count_entries(
    entries: Sequence[LedgerEntry],
    consent: Sequence[Interval],
    blocks: Sequence[Interval],
    exclusions: Sequence[Exclusion],
    eligible: Eligibility,
    after_death: datetime | None,
) -> list[Counted]:
    out = []
    for entry in entries:
        recorded = [(entry.start, entry.end)]
        refused = eligible(entry)
        if refused is not None:
            out.append(Counted(entry, recorded, [], (refused,)))
            continue
        cuts: list[Cut] = []
        counted = intersect(recorded, consent)
        if seconds(counted) < seconds(recorded):
            cuts.append(
                Cut(
                    "before-consent",
                    "outside a documented consent (BHI services need the patient's verbal or "
                    "written consent, documented in the chart: CMS MLN909432)",
                    subtract(recorded, counted),
                )
            )
        if after_death is not None:
            dead = [(after_death, FAR_FUTURE)]
            kept = subtract(counted, dead)
            if seconds(kept) < seconds(counted):
                cuts.append(
                    Cut(
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
                Cut(
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
                Cut(
                    "excluded-service",
                    "during a separately billed service or an inpatient/observation stay, time "
                    "care-management minutes exclude (AAP News; NCTracks)",
                    subtract(counted, kept),
                )
            )
        out.append(Counted(entry, recorded, kept, tuple(cuts)))
    return out


def seconds_in(counted: Sequence[Counted], window: Interval, *, recorded: bool = False) -> float:
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


def overlap_warnings(counted: Sequence[Counted], window: Interval) -> list[str]:
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


def not_counted_in(counted: Sequence[Counted], window: Interval) -> list[Rejected]:
    """Per entry in the month, each reason some of its time is not counted."""
    out = []
    for item in sorted(counted, key=entry_order):
        in_month = intersect(item.recorded, [window])
        if not in_month:
            continue
        for cut in item.cuts:
            spans = intersect(cut.spans, [window]) if cut.spans else in_month
            minutes = int(seconds(spans) // 60)
            out.append(Rejected(item.entry.reference, cut.reason, cut.code, minutes))
    return out


def entry_order(item: Counted) -> tuple[datetime, str]:
    return item.entry.start, item.entry.reference


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


def eligibility(
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

    def eligible(entry: LedgerEntry) -> Cut | None:
        program = entry.program or rules.program
        who = entry.clinician
        if who is None:
            return Cut("no-performer", "names no participant: whose time it is is unknown", [])
        role = role_of(who, care_team_members(record, (entry.start, entry.end), tz), rules)
        if program == "cocm":
            if role == "care-manager":
                return None
            return Cut(
                f"not-care-manager:{role}",
                f"{who}'s time is {_ROLE_TEXT[role]}: CoCM minutes are behavioral health care "
                "manager time (CPT descriptors; CMS MLN909432)",
                [],
            )
        if g0323:
            if who == billing_practitioner:
                return None
            return Cut(
                "not-billing-clinician",
                f"{who}'s time: G0323 counts the billing clinical psychologist/CSW/MHC/MFT's own "
                "time (the G0323 descriptor)",
                [],
            )
        if role == "care-manager" or who == billing_practitioner:
            return None
        return Cut(
            f"not-clinical-staff:{role}",
            f"{who}'s time is {_ROLE_TEXT[role]}: 99484 counts clinical staff time directed by "
            "the billing practitioner (CMS MLN909432)",
            [],
        )

    return eligible


def billing_practitioner_of(
    members: Sequence[tuple[str | None, list[Any]]], rules: BillingRules
) -> str | None:
    return next(
        (ref for ref, _ in members if ref is not None and ref in rules.billing_practitioners),
        rules.billing_practitioner,
    )


def count_record(
    record: PatientRecord,
    rules: BillingRules,
    billing_practitioner: str | None,
    tz: tzinfo,
) -> tuple[list[Counted], list[Rejected], list[str], bool]:
    """The ledger entries with their counted time; rejections; warnings; and whether the
    patient is recorded deceased without a date."""
    entries, rejected = ledger_entries(record.encounters, tz)
    consent = consent_windows(record, rules, tz)
    blocks, warnings = discharge_blocks(record, tz, rules.enrollment)
    after_death, death_undated = after_death_of(record, tz)
    counted = count_entries(
        entries,
        consent,
        blocks,
        exclusions_of(record, tz),
        eligibility(record, rules, billing_practitioner, tz),
        after_death,
    )
    return counted, rejected, warnings, death_undated
