"""Building one patient's :class:`~bhi_fhir.timeline.model.Timeline`: the facts of each reader
(see the package) put together in the shape the protocol's FHIRPath reads as ``%facts``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from bhi_fhir.codes import MENTAL_HEALTH_CARE_PLAN, SNOMED
from bhi_fhir.fhirjson import Resource
from bhi_fhir.fhirjson import day as _day  # the day a date/dateTime is written on
from bhi_fhir.fhirjson import day_in as _practice_day  # that day in the practice's zone
from bhi_fhir.instruments.result import ENTERED_IN_ERROR, Score
from bhi_fhir.timeline.crisis import crisis_episodes, crisis_facts
from bhi_fhir.timeline.model import TERMINAL_STATUSES, Timeline, TimelineSettings
from bhi_fhir.timeline.record import (
    completed_care,
    consent_on_file,
    contact_date,
    enrollment_of,
    is_enrollment,
    own_record,
    record_facts,
)
from bhi_fhir.timeline.refs import (
    bhi_identifier,
    has_code,
    prune,
    ref_of,
    rule_of_identifier,
    version_of,
    versioned,
)
from bhi_fhir.timeline.scores import is_future, score_fact
from bhi_fhir.timeline.targets import MEASURES, primary_target, target_of

__all__ = ["build_timeline"]


def build_timeline(
    patient: str,
    resources: Sequence[Resource],
    scores: Sequence[Score],
    today: date,
    settings: TimelineSettings | None = None,
) -> Timeline:
    """Facts about ``patient`` from their ``resources`` and the ``scores`` of their responses.

    ``scores`` are the scored QuestionnaireResponses (from ``bhi_fhir.instruments``); the
    responses themselves may also be in ``resources`` (their ``meta.versionId`` is used).
    """
    settings = settings or TimelineSettings()
    versions: dict[str, str | None] = {}
    for resource in resources:
        if resource.get("resourceType") == "QuestionnaireResponse":
            versions[ref_of(resource)] = version_of(resource)
    record = own_record(patient, resources)
    gender = record.get("gender") if record is not None else None
    sex = gender if isinstance(gender, str) else None

    current = [s for s in scores if s.instrument is not None and s.status != ENTERED_IN_ERROR]
    # A screen authored after today is not a screen of today (a device clock, a typo): it is
    # no fact, only counted (Timeline.future_dated), compared by day in the practice's zone.
    future = {id(s) for s in current if is_future(s.authored, today, settings.zone)}
    ordered = sorted(  # an entered-in-error response is no fact at all
        (s for s in current if id(s) not in future),
        key=lambda s: (s.authored or "", s.response_ref or ""),
    )
    pairs = [(s, score_fact(s, versions, today, settings.zone)) for s in ordered]
    latest: dict[str, dict[str, Any]] = {}
    for score, fact in pairs:
        if score.instrument is not None and score.final:  # in-progress/stopped: not a screen
            latest[score.instrument] = fact

    crises = crisis_facts(pairs, settings.crisis_within_days)

    facts: dict[str, Any] = {
        "patient": patient,
        "today": today.isoformat(),
        "scores": [fact for _, fact in pairs],
        "latest": latest,
        "enrolled": False,
        "crises": crises,
    }
    if sex:
        facts["sex"] = sex
    facts.update(record_facts(record))

    enrollment, start = _enrollment_facts(resources, settings, today)
    facts.update(enrollment)

    facts["consent"] = _consent_facts(resources, settings)

    facts["contacts"], facts["measurement"] = _contact_facts(
        resources, pairs, start, today, settings
    )

    targets = {
        name: t for name in MEASURES if (t := target_of(name, pairs, start, settings)) is not None
    }
    facts["targets"] = targets
    primary = primary_target(targets, settings)
    if primary is not None:
        facts["target"] = primary

    existing, entries = _existing(resources)
    facts["existing"] = entries
    facts["openRules"] = sorted({str(e["rule"]) for e in entries if e["active"]})

    # One open assessment per patient; one open referral per C-SSRS risk (level of care).
    risks = {
        str(s.response_ref): str(s.severity)
        for s in ordered
        if s.instrument == "cssrs" and s.severity in ("low", "moderate", "high")
    }
    by_rule: dict[str, list[Resource]] = {}
    for value, resource in existing.items():
        by_rule.setdefault(rule_of_identifier(value), []).append(resource)
    facts["crisisAssessments"] = crisis_episodes(
        crises, by_rule.get("crisis-assessment", []), lambda _: ""
    )
    facts["crisisReferrals"] = crisis_episodes(
        crises, by_rule.get("crisis-referral", []), risks.get
    )
    return Timeline(patient=patient, facts=facts, existing=existing, future_dated=len(future))


def _enrollment_facts(
    resources: Sequence[Resource], settings: TimelineSettings, today: date
) -> tuple[dict[str, Any], date | None]:
    """``enrolled``, ``enrollment``, ``weeksInTreatment``, ``reviewPeriod``, ``careCompleted`` and
    ``otherCarePlans``; and the day treatment started (None when not enrolled or unknown)."""
    out: dict[str, Any] = {"enrolled": False}
    plan = enrollment_of(resources, settings.enrollment)
    others = [
        prune({"carePlan": ref_of(r), "title": r.get("title"),
                "start": (d.isoformat() if (d := _day((r.get("period") or {}).get("start")))
                          else None)})
        for r in resources
        if r.get("resourceType") == "CarePlan" and r.get("status") == "active"
        and has_code(r.get("category"), SNOMED, MENTAL_HEALTH_CARE_PLAN)
        and not is_enrollment(r, settings.enrollment)
    ]
    if others:
        out["otherCarePlans"] = sorted(others, key=lambda o: o["carePlan"])
    start: date | None = None
    if plan is not None:
        start = _day((plan.get("period") or {}).get("start")) or _day(plan.get("created"))
        out["enrolled"] = True
        out["enrollment"] = prune(
            {
                "carePlan": ref_of(plan),
                "source": versioned(ref_of(plan), version_of(plan)),
                "start": start.isoformat() if start else None,
                "contributors": [
                    c.get("reference")
                    for c in plan.get("contributor") or []
                    if isinstance(c, Mapping) and isinstance(c.get("reference"), str)
                ],
            }
        )
        if start is not None:
            weeks = (today - start).days // 7
            out["weeksInTreatment"] = weeks
            first, last = settings.review_window_start_week, settings.review_window_end_week
            if weeks >= first:
                width = last - first + 1
                low = first + (weeks - first) // width * width
                out["reviewPeriod"] = f"weeks-{low}-{low + width - 1}"

    if (completed := completed_care(resources, settings.enrollment)) is not None:
        out["careCompleted"] = completed
    return out, start


def _consent_facts(resources: Sequence[Resource], settings: TimelineSettings) -> dict[str, Any]:
    """``consent``: whether an active Consent of the practice's scope is on file, and which."""
    consent = consent_on_file(resources, settings)
    out: dict[str, Any] = {"onFile": consent is not None}
    if consent is not None:
        out.update(
            prune(
                {
                    "consent": ref_of(consent),
                    "source": versioned(ref_of(consent), version_of(consent)),
                    "date": (d.isoformat() if (d := _day(consent.get("dateTime"))) else None),
                }
            )
        )
    return out


def _contact_facts(
    resources: Sequence[Resource],
    pairs: Sequence[tuple[Score, dict[str, Any]]],
    start: date | None,
    today: date,
    settings: TimelineSettings,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``contacts`` (care-manager contacts up to today) and ``measurement`` (complete PHQ-9/GAD-7
    screens), each with the days without one since treatment started."""
    contact_days = sorted(
        d for r in resources if (d := contact_date(r, settings)) is not None and d <= today
    )
    contacts: dict[str, Any] = {"count": len(contact_days)}
    if contact_days:
        contacts["last"] = contact_days[-1].isoformat()
    measure_days = sorted(
        d
        for s, _ in pairs
        if s.instrument in MEASURES and s.complete
        and (d := _practice_day(s.authored, settings.zone)) is not None
    )
    measurement: dict[str, Any] = {}
    if measure_days:
        measurement["last"] = measure_days[-1].isoformat()
    if start is not None:
        since_contact = [d for d in contact_days if d >= start]
        contacts["daysWithout"] = (today - (since_contact[-1] if since_contact else start)).days
        since_measure = [d for d in measure_days if d >= start]
        measurement["daysWithout"] = (today - (since_measure[-1] if since_measure else start)).days
    return contacts, measurement


def _existing(
    resources: Sequence[Resource],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The resources bhi-fhir generated before, by identifier value, and their ``existing``
    facts (identifier, rule, reference, type, status, version, active), by identifier."""
    existing: dict[str, dict[str, Any]] = {}
    for resource in resources:
        value = bhi_identifier(resource)
        if value is None:
            continue
        if value in existing and existing[value].get("id") and not resource.get("id"):
            continue  # the server's copy outranks the same create read back from a Bundle
        existing[value] = dict(resource)
    entries = [
        prune(
            {
                "identifier": value,
                "rule": rule_of_identifier(value),
                "reference": ref_of(resource),
                "resourceType": resource.get("resourceType"),
                "status": resource.get("status"),
                "version": version_of(resource),
                "active": resource.get("status") not in TERMINAL_STATUSES,
            }
        )
        for value, resource in existing.items()
    ]
    entries.sort(key=lambda e: str(e["identifier"]))
    return existing, entries
