"""What the practice plan sets for the patient's timeline: the treat-to-target, screening,
consent, crisis and telehealth values the facts depend on, and which CarePlans are the
practice's BHI enrollment (bhi-fhir's own plus the plan's ``[enrollment]`` rule)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule, TimelineSettings

__all__ = ["enrollment_rule", "timeline_settings"]


def timeline_settings(plan: PracticePlan) -> TimelineSettings:
    """The practice-plan values the timeline needs."""
    t = plan.treat_to_target
    return TimelineSettings(
        remission_below=t.remission_below,
        response_drop_percent=t.response_drop_percent,
        baseline_lookback_days=t.baseline_lookback_days,
        review_window_start_week=t.review_window_start_week,
        review_window_end_week=t.review_window_end_week,
        phq9_positive=plan.screening.phq9_positive,
        gad7_positive=plan.screening.gad7_positive,
        consent_scope=plan.consent.scope,
        consent_category=plan.consent.category,
        crisis_within_days=plan.crisis.consider_within_days,
        count_virtual_contacts=plan.telehealth.virtual_contacts,
        enrollment=enrollment_rule(plan),
        zone=ZoneInfo(plan.billing.timezone),
    )


def enrollment_rule(plan: PracticePlan) -> EnrollmentRule:
    """bhi-fhir's own BHI CarePlans plus the practice's ``[enrollment]`` rule."""
    own = OWN_ENROLLMENT
    return EnrollmentRule(
        identifier_systems=own.identifier_systems
        | frozenset(plan.enrollment.careplan_identifier_systems),
        instantiates=own.instantiates | frozenset(plan.enrollment.instantiates),
    )
