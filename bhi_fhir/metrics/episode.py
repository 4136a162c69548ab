"""One patient's program events, from the record: pure, no I/O.

The program metrics (``bhi_fhir.metrics.program``) count events over a period: screens, contacts,
PHQ-9 scores, psychiatric reviews, crisis assessments, minutes per month. This module reads
them from one patient's resources (the Patient first, as the registry reads them) into a small
JSON-shaped dict, the *episode*, so the metrics never touch FHIR and an episode can be kept
between dashboard views (it only changes when the record does).

Every fact comes from the one computation that already exists: scores from
``bhi_fhir.instruments``, enrollment, contacts, targets and crisis reasons from
``bhi_fhir.timeline``, minutes and codes from ``bhi_fhir.billing``, measure outcomes from the
measures registry (``bhi_fhir.measures.report.MEASURES``).

Episode shape::

    id, care_manager, status        the registry row's (status "" = in the caseload)
    enrolled, start                 the BHI enrollment and its start day (ISO) or None
    baseline                        {date, total} the PHQ-9 baseline (NCQA DRR-E; timeline target)
    phq9                            [[day, total], ...] complete PHQ-9 scores, oldest first
    positive_screens                [day, ...] positive screens (any instrument)
    contacts                        [day, ...] care-manager contacts (timeline's contact rule)
    reviews                         [day, ...] completed psychiatric-review Tasks
    crises                          [{date, assessed}] crisis screens and the day a same-day
                                    assessment covering them was completed (or None)
    months                          {"YYYY-MM": {minutes, recorded, codes}} the period's months
    measures                        {measure id, or <id>/<rate>: [population, ...]} for the
                                    period
    feedback                        completed feedback QuestionnaireResponses of the patient
                                    (``is_feedback``), as read
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bhi_fhir.codes import BHI_ACTIVITY
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import day as fhir_day
from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.result import ENTERED_IN_ERROR, Score
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.measures.common import PatientData, Period
from bhi_fhir.measures.report import rated
from bhi_fhir.paths import profiles_dir
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry.rows import record_status, timeline_settings_for
from bhi_fhir.timeline import (
    TimelineSettings,
    build_timeline,
    practice_day,
    rule_of_identifier,
)

# The timeline's own readings of a contact, a crisis answer and a request's evidence: the
# metrics count exactly what the workflow acts on, so they share the one definition.
from bhi_fhir.timeline.crisis import crisis_reasons, evidence_of
from bhi_fhir.timeline.record import contact_date
from bhi_fhir.timeline.refs import bhi_identifier
from bhi_fhir.workflow.feedback import PATIENT_SURVEY, STAFF_SURVEY

__all__ = ["FEEDBACK_SURVEYS", "MeasureDefs", "is_feedback", "month_keys", "patient_episode",
           "survey_questionnaires"]

logger = logging.getLogger(__name__)

PSYCHIATRIC_REVIEW = "psychiatric-review"  # profiles/activitydefinitions/psychiatric-review.json
CRISIS_ASSESSMENT_RULE = "crisis-assessment"  # the protocol's same-day assessment rule
FEEDBACK_SURVEYS = (PATIENT_SURVEY, STAFF_SURVEY)  # profiles/questionnaires/feedback

MeasureDefs = Sequence[Any]  # bhi_fhir.measures.report.MeasureDef (id, evaluate)


def month_keys(period: Period, today: date) -> list[str]:
    """The calendar months ("YYYY-MM") the period touches, up to today's month."""
    end = min(period.end, today)
    keys: list[str] = []
    year, month = period.start.year, period.start.month
    while (year, month) <= (end.year, end.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def is_feedback(resource: Mapping[str, Any]) -> bool:
    """A completed response to one of the practice's feedback surveys (the patient experience
    and staff workflow Questionnaires, ``bhi_fhir.workflow.feedback``)."""
    canonical = str(resource.get("questionnaire") or "").split("|", 1)[0]
    return (resource.get("resourceType") == "QuestionnaireResponse"
            and resource.get("status") in ("completed", "amended")
            and canonical in FEEDBACK_SURVEYS)


def survey_questionnaires(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The bundled feedback Questionnaires (profiles/questionnaires/feedback) by canonical url:
    their questions' text and each option's scale point (ordinalValue)."""
    folder = (root or profiles_dir()) / "questionnaires" / "feedback"
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        questionnaire = json.loads(path.read_text(encoding="utf-8"))
        if questionnaire.get("url") in FEEDBACK_SURVEYS:
            found[str(questionnaire["url"])] = questionnaire
    return found


def _has_activity(resource: Resource, code: str) -> bool:
    concept = resource.get("code")
    return isinstance(concept, Mapping) and any(
        isinstance(c, Mapping) and c.get("system") == BHI_ACTIVITY and c.get("code") == code
        for c in concept.get("coding") or []
    )


def _done_day(resource: Resource) -> date | None:
    """The day a finished Task or ServiceRequest was completed: the Task's executionPeriod.end
    (what the app writes), else lastModified, else the server's meta.lastUpdated."""
    end = (resource.get("executionPeriod") or {}).get("end")
    meta = resource.get("meta") or {}
    for value in (end, resource.get("lastModified"), meta.get("lastUpdated")):
        found = fhir_day(value)
        if found is not None:
            return found
    return None


def _reviews(resources: Sequence[Resource]) -> list[str]:
    days = {
        d for r in resources
        if r.get("resourceType") == "Task" and r.get("status") == "completed"
        and _has_activity(r, PSYCHIATRIC_REVIEW) and (d := _done_day(r)) is not None
    }
    return sorted(d.isoformat() for d in days)


def _assessments(resources: Sequence[Resource]) -> list[tuple[date, set[str]]]:
    """Each completed same-day assessment (its request and Task share the identifier key):
    the day it was completed and the crisis responses it covered."""
    groups: dict[str, list[Resource]] = {}
    for resource in resources:
        value = bhi_identifier(resource)
        if value is not None and rule_of_identifier(value) == CRISIS_ASSESSMENT_RULE:
            groups.setdefault(value.split(":", 1)[-1], []).append(resource)
    done: list[tuple[date, set[str]]] = []
    for parts in groups.values():
        finished = [r for r in parts if r.get("status") == "completed"]
        days = [d for r in finished if (d := _done_day(r)) is not None]
        if days:
            done.append((min(days), {ref for r in parts for ref in evidence_of(r)}))
    return done


def _crises(scores: Sequence[Score], resources: Sequence[Resource],
            settings: TimelineSettings) -> list[dict[str, Any]]:
    assessed = _assessments(resources)
    found = []
    for score in scores:
        day = practice_day(score.authored, settings.zone)
        if day is None or not crisis_reasons(score):
            continue
        ref = score.response_ref or ""
        covering = sorted(d for d, refs in assessed if ref in refs and d >= day)
        found.append({"date": day.isoformat(),
                      "assessed": covering[0].isoformat() if covering else None})
    return sorted(found, key=lambda c: str(c["date"]))


def _months(resources: Sequence[Resource], keys: Sequence[str],
            plan: PracticePlan | None) -> dict[str, dict[str, Any]]:
    """Counted and recorded care-management minutes and the codes they reach, per month
    (``bhi_fhir.billing``: the CPT time rules and the CMS MLN909432 requirements)."""
    if plan is None or not keys:
        return {}
    from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
    from bhi_fhir.billing.rules import rules_from_plan

    rules = rules_from_plan(plan)
    record = group_by_patient(resources).get(f"Patient/{resources[0].get('id')}")
    if record is None:
        return {}
    months: dict[str, dict[str, Any]] = {}
    for key in keys:
        closed, _rejected = close_month(record, Month.parse(key), rules)
        months[key] = {
            "minutes": sum(m.minutes for m in closed),
            "recorded": sum(m.recorded_minutes for m in closed),
            "codes": [str(c) for m in closed for c in m.codes],
        }
    return months


def _measures(patient: str, resources: Sequence[Resource], scores: Sequence[Score],
              measures: MeasureDefs, period: Period) -> dict[str, list[str]]:
    data = PatientData(patient, resources, tuple(scores))
    outcomes: dict[str, list[str]] = {}
    for measure in measures:
        outcome = measure.evaluate(data, period)
        if outcome is None:
            continue
        # one label per rate of a several-rate measure (``<id>/<rate>``), as ``measure`` shows
        for label, members in rated(measure, [outcome]):
            if members:
                outcomes[label] = sorted(members[0].populations)
    return outcomes


def patient_episode(
    resources: Sequence[Resource],
    today: date,
    plan: PracticePlan | None,
    period: Period,
    *,
    row: Mapping[str, Any] | None = None,
    measures: MeasureDefs = (),
) -> dict[str, Any]:
    """The episode of one patient (the Patient first, then the patient's resources).

    ``row`` is the patient's registry row when there is one (care manager, status); ``measures``
    the measure definitions to decide for ``period``.
    """
    patient = resources[0]
    ref = f"Patient/{patient['id']}"
    settings = timeline_settings_for(plan)
    cut_points = plan.screening.cut_points if plan is not None else None
    scores = screening_scores(list(resources), patient_sex=sex_of(patient),
                              cut_points=cut_points, on_error=lambda _r, _e: None)
    timeline = build_timeline(ref, resources, scores, today, settings)
    facts = timeline.facts
    current = [s for s in scores if s.instrument is not None and s.status != ENTERED_IN_ERROR
               and (d := practice_day(s.authored, settings.zone)) is not None and d <= today]
    # Final screens only (an in-progress or stopped response is no screen, as for the
    # timeline's ``latest``).
    final = [f for f in facts.get("scores") or []
             if f.get("date") and f.get("status") in (None, "completed", "amended")]
    phq9 = [[str(f["date"]), int(f["total"])] for f in final
            if f.get("instrument") == "phq9" and f.get("complete")
            and isinstance(f.get("total"), int)]
    positives = sorted({str(f["date"]) for f in final if f.get("positive")})
    contacts = sorted({
        d.isoformat() for r in resources
        if (d := contact_date(r, settings)) is not None and d <= today
    })
    enrollment = facts.get("enrollment") or {}
    baseline = ((facts.get("targets") or {}).get("phq9") or {}).get("baseline") or {}
    row = row or {}
    return {
        "id": str(patient["id"]),
        "care_manager": str(row.get("care_manager") or ""),
        "status": str(row.get("status") if row else record_status(facts)),
        "enrolled": bool(facts.get("enrolled")),
        "start": enrollment.get("start"),
        "baseline": ({"date": baseline.get("date"), "total": baseline.get("total")}
                     if baseline else None),
        "phq9": phq9,
        "positive_screens": positives,
        "contacts": contacts,
        "reviews": _reviews(resources),
        "crises": _crises(current, resources, settings),
        "months": _months(resources, month_keys(period, today), plan),
        "measures": _measures(ref, resources, current, measures, period),
        "feedback": [r for r in resources if is_feedback(r)],
    }
