"""The timeline's settings and result: which CarePlans are an enrollment, the practice-plan
values the facts depend on, and the :class:`Timeline` itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from bhi_fhir.codes import BHI_IDENTIFIER, BHI_PROTOCOL

__all__ = [
    "LABELS",
    "OWN_ENROLLMENT",
    "TERMINAL_STATUSES",
    "EnrollmentRule",
    "Timeline",
    "TimelineSettings",
]


# Statuses after which a request is finished; a generated resource in one of these is never
# reopened by the same trigger. Task (FHIR R4 Task status), ServiceRequest/CarePlan (revoked).
TERMINAL_STATUSES = frozenset(
    {"completed", "cancelled", "failed", "rejected", "entered-in-error", "revoked"}
)

LABELS = {
    "phq9": "PHQ-9",
    "phq2": "PHQ-2",
    "phqa": "PHQ-A",
    "gad7": "GAD-7",
    "gad2": "GAD-2",
    "cssrs": "C-SSRS",
    "auditc": "AUDIT-C",
    "epds": "EPDS",
}


@dataclass(frozen=True, slots=True)
class EnrollmentRule:
    """Which CarePlans are the practice's BHI enrollment: the ones
    bhi-fhir wrote (its identifier system; or instantiating its protocol PlanDefinition) plus
    those a practice-plan ``[enrollment]`` rule names (a practice whose EHR writes its own BHI
    CarePlans). Another service's mental-health care plan is not an enrollment."""

    identifier_systems: frozenset[str] = frozenset({BHI_IDENTIFIER})
    instantiates: frozenset[str] = frozenset({BHI_PROTOCOL})



OWN_ENROLLMENT = EnrollmentRule()  # bhi-fhir's own CarePlans only (no practice-plan rule)


@dataclass(frozen=True, slots=True)
class TimelineSettings:
    """The practice-plan values the facts depend on (defaults: the practice plan's)."""

    remission_below: int = 5  # NCQA DRR-E
    response_drop_percent: float = 50  # NCQA DRR-E
    baseline_lookback_days: int = 30  # the baseline may precede enrollment by this much
    review_window_start_week: int = 8  # Bao 2016
    review_window_end_week: int = 12  # Bao 2016
    phq9_positive: int = 10  # Kroenke 2001 (choosing the primary target)
    gad7_positive: int = 10  # Spitzer 2006
    consent_scope: str = "treatment"  # CMS MLN909432
    consent_category: str | None = None
    crisis_within_days: int = 14  # practice choice
    count_virtual_contacts: bool = True  # CMS MLN909432 telehealth
    enrollment: EnrollmentRule = OWN_ENROLLMENT  # our own CarePlan, or the practice's rule
    # The practice's zone (billing.timezone): a screen's day is its day there. None: the
    # day as written (the first ten characters).
    zone: tzinfo | None = None



@dataclass(frozen=True, slots=True)
class Timeline:
    patient: str
    facts: dict[str, Any]
    # Generated resources already on the server, by identifier value (for updates / ifMatch).
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Screens authored after ``today`` (a wrong clock, a typo): not facts, only counted.
    future_dated: int = 0
