"""A patient's facts over time: resources + scores + ``today`` → :class:`Timeline`. Pure.

The facts are a plain JSON-shaped dict, so the protocol's FHIRPath conditions can read them as
``%facts``. Shape (``None`` values are omitted so FHIRPath sees empty)::

    patient            "Patient/<id>"
    sex                Patient.gender ("female", "male", ...)
    today              "YYYY-MM-DD"
    scores             every screen (response or screening Observations), oldest first
                       (see :func:`.scores.score_fact`); ``suicideItemUnknown`` when a total came
                       without its suicide item
    latest             {instrument: newest score of that instrument}
    enrolled           bool: the practice's own active BHI CarePlan (``is_enrollment``, FHIR
                       care-plan-category)
    enrollment         {carePlan, source, start, contributors}
    careCompleted      {carePlan, source, end}: the newest of the practice's BHI CarePlans
                       that is completed (status completed, period.end): care finished
    weeksInTreatment   whole weeks since enrollment.start
    reviewPeriod       "weeks-8-12", "weeks-13-17", ... once the review window has started (Bao
                       2016)
    consent            {onFile, consent, source, date}: active Consent, scope treatment (CMS
                       MLN909432)
    contacts           {count, last, daysWithout}: care-manager contacts (see
                       :func:`.record.contact_date`)
    measurement        {last, daysWithout}: PHQ-9/GAD-7 since enrollment (HEDIS DMS-E cadence)
    targets            {phq9: target, gad7: target}; target = {instrument, baseline, latest,
                       improvementPercent, remission, response} (NCQA DRR-E)
    target             the primary target (the instrument the patient screened positive on)
    crises             responses that need a same-day safety assessment (PHQ-9 item 9, PHQ-A suicide
                       items, C-SSRS risk, EPDS item 10; SAFE-T)
    crisisAssessments  the open same-day assessment episode to write, or [] ("Crisis episodes")
    crisisReferrals    one open referral episode per C-SSRS risk to write, or []
    deceased           {date, latest} when the Patient says deceased (deceasedBoolean true: {})
    inactive           {replacedBy} when Patient.active is false or Patient.link replaced-by
    otherCarePlans     other services' active mental-health care plans (SNOMED 718347000, not
                       ours): context for the clinician, not an enrollment
    existing           resources bhi-fhir generated before: {identifier, rule, reference,
                       resourceType, status, version, active}
    openRules          rule ids with at least one generated resource still active

The facts are read by the modules of this package, one job each: :mod:`.model` (settings and
the result), :mod:`.refs` (references and identifiers of resources), :mod:`.record` (what the
patient's resources say: enrollment, consent, contacts, deceased/inactive), :mod:`.scores`
(scores as facts), :mod:`.crisis` (crisis answers and episodes), :mod:`.targets`
(treat-to-target) and :mod:`.build` (:func:`build_timeline`, which puts them together).
"""

from __future__ import annotations

from bhi_fhir.fhirjson import patient_of, replaced_by
from bhi_fhir.timeline.build import build_timeline
from bhi_fhir.timeline.model import (
    LABELS,
    OWN_ENROLLMENT,
    TERMINAL_STATUSES,
    EnrollmentRule,
    Timeline,
    TimelineSettings,
)
from bhi_fhir.timeline.record import is_bhi_plan, is_enrollment
from bhi_fhir.timeline.refs import full_url_for, rule_of_identifier
from bhi_fhir.timeline.scores import is_future_dated, practice_day

__all__ = [
    "LABELS",
    "OWN_ENROLLMENT",
    "TERMINAL_STATUSES",
    "EnrollmentRule",
    "Timeline",
    "TimelineSettings",
    "build_timeline",
    "full_url_for",
    "is_bhi_plan",
    "is_enrollment",
    "is_future_dated",
    "patient_of",
    "practice_day",
    "replaced_by",
    "rule_of_identifier",
]
