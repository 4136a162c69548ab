"""The practice plan: one practice's BHI workflow, as a validated TOML file.

Every practice adapts the collaborative-care workflow to its staff and resources; that
adaptation is data: team and roles, the crisis
referral directory, screening cut points, hand-off windows and cadences, treat-to-target
definitions, telehealth use and billing rules. The protocol's PlanDefinitions read these values
as ``%plan`` (see :meth:`PracticePlan.fhirpath_view`), so no threshold is a literal in a rule.

Defaults name their public source (publication, measure, code set or CMS guidance). Values marked
*practice choice* have no public default; the shipped value is a starting point for the practice's
clinical lead.

Errors name the key path and the problem, e.g. ``crisis.levels.high: unknown level 'icu'``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bhi_fhir.cut_points import CutPoint, SexCutPoints
from bhi_fhir.exit_codes import EXIT_CONFIG

__all__ = [
    "Billing",
    "CareManager",
    "Consent",
    "Crisis",
    "Enrollment",
    "Feedback",
    "Handoffs",
    "Payer",
    "PracticePlan",
    "PracticePlanError",
    "Records",
    "ReferralTarget",
    "Screening",
    "SyncSettings",
    "Team",
    "TeamMember",
    "Telehealth",
    "TreatToTarget",
    "load_practice_plan",
    "parse_practice_plan",
]

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Priority = Literal["routine", "urgent", "asap", "stat"]  # http://hl7.org/fhir/request-priority
Risk = Literal["low", "moderate", "high"]  # C-SSRS screener triage (Columbia)
Instrument = Literal["phq9", "phq2", "phqa", "gad7", "gad2", "cssrs", "auditc", "epds"]

_REFERENCE_TYPES = (
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "HealthcareService",
)


class PracticePlanError(ValueError):
    """The practice plan cannot be used. ``problems`` lists ``"key.path: what is wrong"``."""

    exit_code = EXIT_CONFIG  # a plan that cannot be used is configuration

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Problems(ValueError):
    """Cross-field problems found after the fields themselves validated, already with paths."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_reference(value: str) -> str:
    kind, _, ident = value.partition("/")
    if kind not in _REFERENCE_TYPES or not ident or "/" in ident:
        raise ValueError(
            f"'{value}' is not a reference like 'Practitioner/<id>' "
            f"(allowed types: {', '.join(_REFERENCE_TYPES)})"
        )
    return value


def _check_references(values: list[str], path: str) -> None:
    """Every entry of a list of references, each problem with its path (``path.<index>``)."""
    problems = []
    for index, ref in enumerate(values):
        try:
            _check_reference(ref)
        except ValueError as exc:
            problems.append(f"{path}.{index}: {exc}")
    if problems:
        raise _Problems(problems)


class TeamMember(_Strict):
    reference: str
    display: str

    @model_validator(mode="after")
    def _reference_shape(self) -> TeamMember:
        _check_reference(self.reference)
        return self


class CareManager(TeamMember):
    # Caseload capacity is a practice choice (staffing, AIMS Center "caseload size").
    capacity: int = Field(default=60, ge=1)


class Team(_Strict):
    """CMS MLN909432 Team: billing practitioner, BHCM(s), psychiatric consultant."""

    billing_practitioner: TeamMember
    care_managers: list[CareManager] = Field(min_length=1)
    psychiatric_consultant: TeamMember
    # Who receives same-day crisis Tasks (same-day safety assessment, SAFE-T); practice choice.
    clinician_on_duty: TeamMember


class Screening(_Strict):
    instruments: list[Instrument] = ["phq9", "phq2", "gad7", "cssrs", "auditc"]
    phq9_positive: int = Field(default=10, ge=1, le=27)  # HEDIS DSF ≥10 (Kroenke 2001; Arroll 2010)
    phqa_positive: int = Field(default=10, ge=1, le=27)  # HEDIS DSF-E PHQ-9M ≥10 (PHQ-A: NIMH ASQ)
    phq2_positive: int = Field(default=3, ge=1, le=6)  # Arroll 2010, authors' cut point ≥3
    gad7_positive: int = Field(default=10, ge=1, le=21)  # Spitzer 2006 ≥10
    gad2_positive: int = Field(default=3, ge=1, le=6)  # GAD-2 ≥3 (Kroenke 2007)
    epds_positive: int = Field(default=10, ge=1, le=30)  # HEDIS DSF-E ≥10
    auditc_positive_male: int = Field(default=4, ge=1, le=12)  # US Core AUDIT-C ≥4 men
    auditc_positive_female: int = Field(default=3, ge=1, le=12)  # US Core AUDIT-C ≥3 women
    # A screen older than this many days is history, not a reason to act: engage, consent,
    # phq9-followup and brief-intervention only fire for screens from the last lookback_days,
    # so a backfill over years of data creates no Tasks for stale positive screens. Practice
    # choice; the default matches HEDIS DSF-E's follow-up within 30 days of a positive screen
    # (HEDIS DSF-E).
    lookback_days: int = Field(default=30, ge=0)
    # A positive AUDIT-C whose every point comes from Q1 (Q2 = Q3 = 0): drinking is probably
    # within limits (US Core AUDIT-C). "note": the brief-intervention Task is still created and says
    # so, the clinician decides; "skip": no Task. Practice choice.
    auditc_q1_only: Literal["note", "skip"] = "note"
    # Consent on file but the latest positive screen is older than lookback_days: "rescreen"
    # (default) = a Task to repeat the PHQ-9/GAD-7 first, enrollment then fires on the new
    # screen; "enroll" = enroll on the old screen. Treat-to-target needs a baseline from
    # baseline_lookback_days before enrollment (NCQA DRR-E, Bao 2016) and phase 2 starts with an
    # assessment with validated scales (AIMS Center); a stale screen gives neither.
    stale_screen_at_enrollment: Literal["rescreen", "enroll"] = "rescreen"

    @property
    def cut_points(self) -> dict[Instrument, CutPoint]:
        """The cut points, as ``score_response(cut_points=...)`` takes them: AUDIT-C's by sex,
        so the scorer, its Observations and the brief-intervention rule use one threshold."""
        return {
            "phq9": self.phq9_positive,
            "phq2": self.phq2_positive,
            "phqa": self.phqa_positive,
            "gad7": self.gad7_positive,
            "gad2": self.gad2_positive,
            "epds": self.epds_positive,
            "auditc": SexCutPoints(
                male=self.auditc_positive_male, female=self.auditc_positive_female
            ),
        }


class Handoffs(_Strict):
    # Time from a positive screen to the first BHCM contact: practice choice (no public default).
    first_contact_days: int = Field(default=7, ge=0)
    # No care-manager contact for this long → outreach. Bao 2016 first follow-up within 4 weeks;
    # AIMS Center registry flag "no contact ≥4 weeks".
    contact_interval_days: int = Field(default=28, ge=1)
    # Measurement cadence (PHQ-9/GAD-7). HEDIS DMS-E "a score at every contact"; 4 weeks matches the
    # contact interval. Also the due date of the enrollment follow-up measurement Task.
    measurement_interval_days: int = Field(default=28, ge=1)
    # Initial BHCM assessment after enrollment (AIMS Center phase 2): practice choice.
    initial_assessment_days: int = Field(default=7, ge=0)
    # Weekly systematic caseload review (a required element of the CPT 99492/99493 descriptors).
    caseload_review_weekday: Weekday = "wednesday"
    caseload_review_attendees: list[str] = []

    @model_validator(mode="after")
    def _attendees(self) -> Handoffs:
        _check_references(self.caseload_review_attendees, "handoffs.caseload_review_attendees")
        return self


class ReferralTarget(_Strict):
    """One level of care in the crisis referral directory (SAMHSA 2020 levels of care)."""

    name: str
    performer: str  # Organization/… or HealthcareService/…
    phone: str | None = None
    url: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _performer(self) -> ReferralTarget:
        _check_reference(self.performer)
        return self


class Crisis(_Strict):
    # Who keeps the referral directory current (AIMS Center, AMA: crisis referral-list ownership).
    maintained_by: str
    directory: dict[str, ReferralTarget]
    # C-SSRS risk → directory level for the crisis-referral rule. Risks not listed get no
    # referral (the same-day assessment still fires). A design proposal, set by the clinical lead:
    # high → ED or mobile crisis; moderate → practice choice.
    levels: dict[str, str] = {"high": "emergency-department", "moderate": "crisis-stabilization"}
    # Risk → ServiceRequest.priority (FHIR request-priority; design choice: stat for high, urgent
    # for moderate).
    priorities: dict[str, Priority] = {"high": "stat", "moderate": "urgent"}
    # Same-day suicide risk assessment priority (asap; FHIR request-priority).
    assessment_priority: Priority = "asap"
    # Responses older than this are history, not a current crisis (backfills over years of
    # data must not order same-day assessments for old responses). Practice choice.
    consider_within_days: int = Field(default=14, ge=0)

    @model_validator(mode="after")
    def _levels(self) -> Crisis:
        problems: list[str] = []
        try:
            _check_reference(self.maintained_by)
        except ValueError as exc:
            problems.append(f"crisis.maintained_by: {exc}")
        risks = ("low", "moderate", "high")
        for risk, level in self.levels.items():
            if risk not in risks:
                problems.append(f"crisis.levels.{risk}: unknown risk '{risk}' (use {risks})")
            elif level not in self.directory:
                known = ", ".join(sorted(self.directory)) or "none"
                problems.append(
                    f"crisis.levels.{risk}: unknown level '{level}' (directory has: {known})"
                )
        for risk in self.priorities:
            if risk not in risks:
                problems.append(f"crisis.priorities.{risk}: unknown risk '{risk}' (use {risks})")
        for risk in self.levels:
            if risk in risks and risk not in self.priorities:
                problems.append(f"crisis.priorities.{risk}: missing (crisis.levels maps '{risk}')")
        if problems:
            raise _Problems(problems)
        return self


class TreatToTarget(_Strict):
    response_drop_percent: float = Field(default=50, gt=0, le=100)  # NCQA DRR-E ≥50% drop
    remission_below: int = Field(default=5, ge=1)  # NCQA DRR-E PHQ-9 <5 (GAD-7 <5, [M])
    review_window_start_week: int = Field(default=8, ge=1)  # Bao 2016 weeks 8–12
    review_window_end_week: int = Field(default=12, ge=1)  # Bao 2016
    baseline_lookback_days: int = Field(default=30, ge=0)  # baseline may precede enrollment by this

    @model_validator(mode="after")
    def _window(self) -> TreatToTarget:
        if self.review_window_end_week < self.review_window_start_week:
            raise _Problems(
                [
                    "treat_to_target.review_window_end_week: "
                    f"{self.review_window_end_week} is before review_window_start_week "
                    f"{self.review_window_start_week}"
                ]
            )
        return self


class Records(_Strict):
    """What the patient's own record says about new work (FHIR R4 Patient.deceased[x],
    Patient.active, Patient.link, https://hl7.org/fhir/R4/patient.html). A deceased patient
    gets no new work and bhi-fhir's open Tasks for them are proposed for cancellation
    (Medicare pays no services after death); an inactive record gets no new work."""

    # A deceased patient's active BHI CarePlan: "revoked" (default: FHIR request-status
    # "terminated prior to the known full completion", https://hl7.org/fhir/R4/valueset-request-status.html),
    # "completed" (the practice counts the episode as ended), or "leave" (a person closes it).
    deceased_careplan_status: Literal["revoked", "completed", "leave"] = "revoked"


class Enrollment(_Strict):
    """Which CarePlans are BHI enrollment besides bhi-fhir's own: for a
    practice whose EHR writes its own BHI CarePlans, their identifier systems or the
    canonical URLs they instantiate. Another service's mental-health care plan (SNOMED
    718347000 alone) is never an enrollment: it is shown as context."""

    careplan_identifier_systems: list[str] = []
    instantiates: list[str] = []


class Consent(_Strict):
    # CMS MLN909432 consent: documented; read as an active Consent with this scope.
    scope: str = "treatment"
    # Narrow to Consents carrying this category code (any system); None = any category.
    category: str | None = None


class Telehealth(_Strict):
    virtual_contacts: bool = True  # CMS MLN909432: CoCM contacts may be in person, phone or video
    place_of_service_home: str = "10"  # CMS place of service 10: patient's home
    place_of_service_other: str = "02"  # CMS place of service 02: telehealth elsewhere
    modifier_video: str = "95"  # CPT modifier 95: real-time audio-video
    modifier_audio: str = "93"  # CPT modifier 93: audio-only


class Payer(_Strict):
    """One payer's billing rules, keyed in ``billing.payers`` by the Coverage.payor display,
    reference or identifier value (NC Medicaid 4 a month, one vendor 2: caps vary by payer)."""

    name: str | None = None
    addon_max_units: int | None = Field(default=None, ge=0)  # None = billing.addon_max_units


class Billing(_Strict):
    program: Literal["cocm", "general-bhi"] = "cocm"
    setting: Literal["physician-office", "fqhc", "rhc"] = "physician-office"
    # CPT midpoint rule and the CPT descriptors' minimums.
    cocm_first_month_minutes: int = 36
    cocm_later_month_minutes: int = 31
    g2214_minutes: int = 16
    addon_first_month_minutes: int = 86
    addon_later_month_minutes: int = 76
    addon_unit_minutes: int = 30
    addon_max_units: int = Field(default=4, ge=0)  # payer-configurable (NC Medicaid 4)
    general_bhi_minutes: int = 20  # CPT 99484 "at least 20 min"
    # CDS Hooks billing card: shown when this month's counted minutes are at most this many short
    # of the next code's threshold (one short contact); 0 = no card. Practice choice.
    near_threshold_minutes: int = Field(default=10, ge=0)
    # Payers whose rules differ from the defaults above (e.g. +99494 caps); none by default.
    payers: dict[str, Payer] = {}
    # The IANA zone the practice's calendar months are counted in (CMS MLN909432 calendar-month
    # service period). Practice choice: set it to the practice's own zone.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # Checked here, at load: every command reading the plan gets the same clear error
        # instead of a failure the first time a month is counted.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. 'America/New_York')"
            ) from None
        return value

    # CMS MLN909432 care team / HCPCS G0323: the billing practitioner's qualification picks 99484 vs
    # G0323.
    billing_practitioner_qualification: Literal[
        "physician", "np", "pa", "cns", "cnm", "psychologist", "csw", "counselor", "mft"
    ] = "physician"


class SyncSettings(_Strict):
    """How ``bhi-fhir sync`` writes to the server (no clinical rule; practice choice).

    ``backfill_days``: screening Observations are written only for responses authored within
    this many days before the run's today (None: every response). Older screens still count
    for the clinical timeline (baselines, treat-to-target) but are not written as
    Observations, so a first sync over years of history does not copy all of it back."""

    backfill_days: int | None = Field(default=None, ge=0)


class Feedback(_Strict):
    """When the practice asks for feedback on its BHI workflow (the AMA's BHI workflow design
    asks each practice to plan patient and staff feedback). The workflow creates the feedback
    Tasks (``bhi_fhir.workflow.feedback``): the patient experience survey and the staff
    workflow survey (profiles/questionnaires/feedback). Cadences are practice choices."""

    # Patient experience survey this many weeks after enrollment (None: not asked). Practice
    # choice; 8 weeks is the start of the treat-to-target review window (Bao 2016, weeks 8-12),
    # so the patient's view arrives when the team reviews non-response.
    patient_after_enrollment_weeks: int | None = Field(default=8, ge=1)
    # Patient experience survey when care is completed (the BHI CarePlan completed).
    patient_at_completion: bool = True
    # A patient survey not offered within this many days of falling due is not offered any
    # more: a first run over old enrollments and completions asks no one about care long past.
    patient_offer_within_days: int = Field(default=28, ge=0)
    # Staff workflow survey once every this many months, in calendar-aligned periods
    # (3 = quarterly: January, April, July, October); 0 = not asked.
    staff_every_months: Literal[0, 1, 2, 3, 4, 6, 12] = 3
    # Who answers the staff survey; empty = the team (billing practitioner, care managers,
    # psychiatric consultant).
    staff: list[str] = []

    @model_validator(mode="after")
    def _staff_references(self) -> Feedback:
        _check_references(self.staff, "feedback.staff")
        return self


class PracticePlan(_Strict):
    practice: str
    team: Team
    screening: Screening = Screening()
    handoffs: Handoffs = Handoffs()
    crisis: Crisis
    treat_to_target: TreatToTarget = TreatToTarget()
    consent: Consent = Consent()
    enrollment: Enrollment = Enrollment()
    records: Records = Records()
    telehealth: Telehealth = Telehealth()
    billing: Billing = Billing()
    sync: SyncSettings = SyncSettings()
    feedback: Feedback = Feedback()

    @model_validator(mode="after")
    def _team_unique(self) -> PracticePlan:
        refs = [cm.reference for cm in self.team.care_managers]
        duplicates = sorted({r for r in refs if refs.count(r) > 1})
        if duplicates:
            raise _Problems([f"team.care_managers: '{duplicates[0]}' listed twice"])
        return self

    def feedback_staff(self) -> list[TeamMember]:
        """Who answers the staff workflow survey: ``feedback.staff``, else the team
        (billing practitioner, care managers, psychiatric consultant), each once."""
        team = [self.team.billing_practitioner, *self.team.care_managers,
                self.team.psychiatric_consultant]
        known = {m.reference: m for m in team}
        refs = self.feedback.staff or [m.reference for m in team]
        return [known.get(ref) or TeamMember(reference=ref, display=ref)
                for ref in dict.fromkeys(refs)]

    def fhirpath_view(self) -> dict[str, Any]:
        """The plan as plain JSON for FHIRPath ``%plan``.

        The TOML shape, plus ``crisis.routes``: one entry per risk the plan refers, joined
        with the directory (``risk``, ``level``, ``priority``, ``performer``, ``name``, ``phone``),
        because FHIRPath cannot look a key up in a map.
        """
        view = self.model_dump(mode="json")
        routes = []
        for risk, level in self.crisis.levels.items():
            target = self.crisis.directory[level]
            routes.append(
                {
                    "risk": risk,
                    "level": level,
                    "priority": self.crisis.priorities[risk],
                    "performer": target.performer,
                    "name": target.name,
                    "phone": target.phone,
                }
            )
        view["crisis"]["routes"] = routes
        return view

    def today(self, now: datetime | None = None) -> date:
        """The practice's calendar day at ``now`` (default: the system clock), in the
        practice's zone (``billing.timezone``): the one clock every command and the app ask
        "what day is it". A day, not a timestamp: Provenance.recorded and journal instants
        stay UTC instants. ``now`` must be time-zone aware."""
        moment = now if now is not None else datetime.now(UTC)
        return moment.astimezone(ZoneInfo(self.billing.timezone)).date()


def _format_errors(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, _Problems):
            problems.extend(original.problems)
            continue
        path = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif "input" in err and err["type"] in ("literal_error", "enum"):
            message = f"{message}, got {err['input']!r}"
        problems.append(f"{path}: {message}")
    return problems


def parse_practice_plan(data: Mapping[str, Any], *, source: str = "practice plan") -> PracticePlan:
    """Validate already-parsed TOML/JSON data; raise :class:`PracticePlanError`."""
    try:
        return PracticePlan.model_validate(dict(data))
    except ValidationError as exc:
        raise PracticePlanError(source, _format_errors(exc)) from None


def load_practice_plan(path: str | Path) -> PracticePlan:
    """Read and validate a practice-plan TOML file; raise :class:`PracticePlanError`."""
    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise PracticePlanError(name, [f"cannot read file: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PracticePlanError(name, [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise PracticePlanError(name, [f"not UTF-8 text (byte {exc.start})"]) from None
    except RecursionError:  # arrays or inline tables nested past the parser's stack
        raise PracticePlanError(name, ["not valid TOML: nested too deeply"]) from None
    return parse_practice_plan(data, source=name)
