"""A patient's facts over time: resources + scores + ``today`` → :class:`Timeline`. Pure.

The facts are a plain JSON-shaped dict, so the protocol's FHIRPath conditions can read them as
``%facts`` (design.md decision 2). Shape (``None`` values are omitted so FHIRPath sees empty)::

    patient            "Patient/<id>"
    sex                Patient.gender ("female", "male", ...)
    today              "YYYY-MM-DD"
    scores             every scored response, oldest first (see ``_score_fact``)
    latest             {instrument: newest score of that instrument}
    enrolled           bool: an active CarePlan with category SNOMED 718347000 (§4.4)
    enrollment         {carePlan, source, start, contributors}
    weeksInTreatment   whole weeks since enrollment.start
    reviewPeriod       "weeks-8-12", "weeks-13-17", ... once the review window has started (§2.2)
    consent            {onFile, consent, source, date}: active Consent, scope treatment (§4.3)
    contacts           {count, last, daysWithout}: care-manager contacts (see ``_contact_date``)
    measurement        {last, daysWithout}: PHQ-9/GAD-7 since enrollment (§2.2 cadence)
    targets            {phq9: target, gad7: target}; target = {instrument, baseline, latest,
                       improvementPercent, remission, response} (§2.1)
    target             the primary target (the instrument the patient screened positive on)
    crises             responses that need a same-day safety assessment (§1.2, §1.4, §1.6, §1.8, §3)
    existing           resources bhi-fhir generated before: {identifier, rule, reference,
                       resourceType, status, version, active}
    openRules          rule ids with at least one generated resource still active

Care-manager contacts (§2.3 "contact count and last contact date"): a finished or in-progress
Encounter, or a completed/in-progress Procedure, coded BHI_ACTIVITY ``care-management-contact``
(the billing ledger's entries), plus a *completed* engage or outreach Task that bhi-fhir
generated: completing that Task records that the care manager reached the patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bhi_fhir.codes import (
    BHI_ACTIVITY,
    BHI_IDENTIFIER,
    CARE_MANAGEMENT_CONTACT,
    MENTAL_HEALTH_CARE_PLAN,
    SNOMED,
)
from bhi_fhir.instruments.result import SUICIDE_RISK, Score

__all__ = [
    "LABELS",
    "TERMINAL_STATUSES",
    "Timeline",
    "TimelineSettings",
    "build_timeline",
    "patient_of",
    "rule_of_identifier",
]

Resource = Mapping[str, Any]

# Statuses after which a request is finished; a generated resource in one of these is never
# reopened by the same trigger. Task (§5 core Task status), ServiceRequest/CarePlan (revoked).
TERMINAL_STATUSES = frozenset(
    {"completed", "cancelled", "failed", "rejected", "entered-in-error", "revoked"}
)
_CONTACT_TASK_CODES = frozenset({"engage", "outreach"})
_PHQ9_ITEM9 = "44260-8"  # §1.2
_MEASURES = ("phq9", "gad7")  # treat-to-target instruments, §2.1
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
class TimelineSettings:
    """The practice-plan values the facts depend on (defaults: bhi-domain.md)."""

    remission_below: int = 5  # §2.1
    response_drop_percent: float = 50  # §2.1
    baseline_lookback_days: int = 30  # issue 4
    review_window_start_week: int = 8  # §2.2
    review_window_end_week: int = 12  # §2.2
    phq9_positive: int = 10  # §1.2 (choosing the primary target)
    gad7_positive: int = 10  # §1.5
    consent_scope: str = "treatment"  # §4.3
    consent_category: str | None = None
    crisis_within_days: int = 14  # practice choice
    count_virtual_contacts: bool = True  # §4.3 telehealth


@dataclass(frozen=True, slots=True)
class Timeline:
    patient: str
    facts: dict[str, Any]
    # Generated resources already on the server, by identifier value (for updates / ifMatch).
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)


def patient_of(resource: Resource) -> str | None:
    """The ``Patient/<id>`` a resource belongs to, or None."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        ident = resource.get("id")
        return f"Patient/{ident}" if isinstance(ident, str) else None
    for key in ("subject", "patient", "for", "beneficiary"):
        ref = resource.get(key)
        if isinstance(ref, Mapping):
            value = ref.get("reference")
            if isinstance(value, str) and value.startswith("Patient/"):
                return value
    return None


def rule_of_identifier(value: str) -> str:
    """``"enroll.careplan:…"`` → ``"enroll"``."""
    return value.split(":", 1)[0].split(".", 1)[0]


def _ref(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _version(resource: Resource) -> str | None:
    meta = resource.get("meta")
    if isinstance(meta, Mapping):
        version = meta.get("versionId")
        if isinstance(version, str | int):
            return str(version)
    return None


def _versioned(ref: str, version: str | None) -> str:
    return f"{ref}/_history/{version}" if version else ref


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _codings(concepts: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(concepts, Mapping):
        concepts = [concepts]
    if not isinstance(concepts, list):
        return
    for concept in concepts:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping):
                    yield coding


def _has_code(concepts: Any, system: str | None, code: str) -> bool:
    return any(
        c.get("code") == code and (system is None or c.get("system") == system)
        for c in _codings(concepts)
    )


def _prune(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def _score_fact(score: Score, versions: Mapping[str, str | None], today: date) -> dict[str, Any]:
    ref = score.response_ref or ""
    day = _day(score.authored)
    return _prune(
        {
            "instrument": score.instrument,
            "label": LABELS.get(score.instrument or "", score.instrument),
            "total": score.total,
            "severity": score.severity,
            "positive": score.positive,
            "complete": score.complete,
            "flags": list(score.flags),
            "items": dict(score.items),
            "response": ref or None,
            "source": _versioned(ref, versions.get(ref)) if ref else None,
            "date": day.isoformat() if day else None,
            "daysAgo": (today - day).days if day else None,
        }
    )


def _crisis_reasons(score: Score) -> list[str]:
    """Why a response needs a same-day assessment (§1.2 item 9, §1.4, §1.6, §1.8), or []."""
    reasons: list[str] = []
    if score.instrument in ("phq9", "phqa"):
        item9 = score.items.get(_PHQ9_ITEM9)
        if item9:
            reasons.append(f"PHQ-9 item 9 = {item9}")
    if score.instrument == "cssrs" and score.severity in ("low", "moderate", "high"):
        reasons.append(f"C-SSRS risk {score.severity}")
    if not reasons and score.suicide_risk:
        label = {"phqa": "PHQ-A suicide question yes", "epds": "EPDS item 10 > 0"}.get(
            score.instrument or "", f"{score.instrument} {SUICIDE_RISK} flag"
        )
        reasons.append(label)
    return reasons


def _enrollment(resources: Sequence[Resource]) -> Resource | None:
    plans = [
        r
        for r in resources
        if r.get("resourceType") == "CarePlan"
        and r.get("status") == "active"
        and _has_code(r.get("category"), SNOMED, MENTAL_HEALTH_CARE_PLAN)
    ]
    if not plans:
        return None
    # The most recent enrollment wins; ties broken by id for a stable answer.
    return max(plans, key=lambda r: (str((r.get("period") or {}).get("start", "")), _ref(r)))


def _consent(resources: Sequence[Resource], settings: TimelineSettings) -> Resource | None:
    found = [
        r
        for r in resources
        if r.get("resourceType") == "Consent"
        and r.get("status") == "active"
        and _has_code(r.get("scope"), None, settings.consent_scope)
        and (
            settings.consent_category is None
            or _has_code(r.get("category"), None, settings.consent_category)
        )
    ]
    return max(found, key=lambda r: (str(r.get("dateTime", "")), _ref(r))) if found else None


def _contact_date(resource: Resource, settings: TimelineSettings) -> date | None:
    kind = resource.get("resourceType")
    if kind == "Encounter":
        if resource.get("status") not in ("finished", "in-progress"):
            return None
        if not _has_code(resource.get("type"), BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT):
            return None
        klass = resource.get("class")
        if (
            not settings.count_virtual_contacts
            and isinstance(klass, Mapping)
            and klass.get("code") == "VR"
        ):
            return None
        return _day((resource.get("period") or {}).get("start"))
    if kind == "Procedure":
        if resource.get("status") not in ("completed", "in-progress"):
            return None
        if not _has_code(resource.get("code"), BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT):
            return None
        performed = resource.get("performedDateTime") or (
            resource.get("performedPeriod") or {}
        ).get("start")
        return _day(performed)
    if kind == "Task" and resource.get("status") == "completed":
        if not any(
            c.get("system") == BHI_ACTIVITY and c.get("code") in _CONTACT_TASK_CODES
            for c in _codings(resource.get("code"))
        ):
            return None
        end = (resource.get("executionPeriod") or {}).get("end")
        return _day(end or resource.get("lastModified") or resource.get("authoredOn"))
    return None


def _identifier(resource: Resource) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping) and ident.get("system") == BHI_IDENTIFIER:
            value = ident.get("value")
            if isinstance(value, str):
                return value
    return None


def _target(
    instrument: str,
    scores: Sequence[tuple[Score, dict[str, Any]]],
    start: date | None,
    settings: TimelineSettings,
) -> dict[str, Any] | None:
    """Baseline → latest for one instrument (§2.1), or None without a baseline."""
    if start is None:
        return None
    since = date.fromordinal(start.toordinal() - settings.baseline_lookback_days)
    series = [
        fact
        for score, fact in scores
        if score.instrument == instrument
        and score.complete
        and score.total is not None
        and (day := _day(score.authored)) is not None
        and day >= since
    ]
    if not series:
        return None
    baseline, latest = series[0], series[-1]
    followed_up = latest is not baseline
    improvement: float | None = None
    if followed_up and baseline["total"] > 0:
        improvement = round((baseline["total"] - latest["total"]) * 100 / baseline["total"], 1)
    remission = followed_up and latest["total"] < settings.remission_below
    response = improvement is not None and improvement >= settings.response_drop_percent
    return _prune(
        {
            "instrument": instrument,
            "baseline": baseline,
            "latest": latest,
            "followUps": len(series) - 1,
            "improvementPercent": improvement,
            "remission": remission,
            "response": response,
        }
    )


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
    sex: str | None = None
    for resource in resources:
        if resource.get("resourceType") == "QuestionnaireResponse":
            versions[_ref(resource)] = _version(resource)
        elif resource.get("resourceType") == "Patient":
            gender = resource.get("gender")
            sex = gender if isinstance(gender, str) else None

    ordered = sorted(
        (s for s in scores if s.instrument is not None),
        key=lambda s: (s.authored or "", s.response_ref or ""),
    )
    pairs = [(s, _score_fact(s, versions, today)) for s in ordered]
    latest: dict[str, dict[str, Any]] = {}
    for score, fact in pairs:
        if score.instrument is not None:
            latest[score.instrument] = fact

    crises = []
    for score, fact in pairs:
        reasons = _crisis_reasons(score)
        age = fact.get("daysAgo")
        if reasons and isinstance(age, int) and 0 <= age <= settings.crisis_within_days:
            crises.append(
                _prune(
                    {
                        "response": fact.get("response"),
                        "source": fact.get("source"),
                        "date": fact.get("date"),
                        "instrument": score.instrument,
                        "risk": score.severity if score.instrument == "cssrs" else None,
                        "item9": score.items.get(_PHQ9_ITEM9),
                        "reason": "; ".join(reasons),
                    }
                )
            )

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

    plan = _enrollment(resources)
    start: date | None = None
    if plan is not None:
        start = _day((plan.get("period") or {}).get("start")) or _day(plan.get("created"))
        facts["enrolled"] = True
        facts["enrollment"] = _prune(
            {
                "carePlan": _ref(plan),
                "source": _versioned(_ref(plan), _version(plan)),
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
            facts["weeksInTreatment"] = weeks
            first, last = settings.review_window_start_week, settings.review_window_end_week
            if weeks >= first:
                width = last - first + 1
                low = first + (weeks - first) // width * width
                facts["reviewPeriod"] = f"weeks-{low}-{low + width - 1}"

    consent = _consent(resources, settings)
    facts["consent"] = {"onFile": consent is not None}
    if consent is not None:
        facts["consent"].update(
            _prune(
                {
                    "consent": _ref(consent),
                    "source": _versioned(_ref(consent), _version(consent)),
                    "date": (d.isoformat() if (d := _day(consent.get("dateTime"))) else None),
                }
            )
        )

    contact_days = sorted(
        d for r in resources if (d := _contact_date(r, settings)) is not None and d <= today
    )
    contacts: dict[str, Any] = {"count": len(contact_days)}
    if contact_days:
        contacts["last"] = contact_days[-1].isoformat()
    measure_days = sorted(
        d
        for s, _ in pairs
        if s.instrument in _MEASURES and s.complete and (d := _day(s.authored)) is not None
    )
    measurement: dict[str, Any] = {}
    if measure_days:
        measurement["last"] = measure_days[-1].isoformat()
    if start is not None:
        since_contact = [d for d in contact_days if d >= start]
        contacts["daysWithout"] = (today - (since_contact[-1] if since_contact else start)).days
        since_measure = [d for d in measure_days if d >= start]
        measurement["daysWithout"] = (today - (since_measure[-1] if since_measure else start)).days
    facts["contacts"] = contacts
    facts["measurement"] = measurement

    targets = {
        name: t for name in _MEASURES if (t := _target(name, pairs, start, settings)) is not None
    }
    facts["targets"] = targets
    primary = _primary(targets, settings)
    if primary is not None:
        facts["target"] = primary

    existing: dict[str, dict[str, Any]] = {}
    entries = []
    for resource in resources:
        value = _identifier(resource)
        if value is None:
            continue
        status = resource.get("status")
        active = status not in TERMINAL_STATUSES
        existing[value] = dict(resource)
        entries.append(
            _prune(
                {
                    "identifier": value,
                    "rule": rule_of_identifier(value),
                    "reference": _ref(resource),
                    "resourceType": resource.get("resourceType"),
                    "status": status,
                    "version": _version(resource),
                    "active": active,
                }
            )
        )
    entries.sort(key=lambda e: str(e["identifier"]))
    facts["existing"] = entries
    facts["openRules"] = sorted({str(e["rule"]) for e in entries if e["active"]})
    return Timeline(patient=patient, facts=facts, existing=existing)


def _primary(
    targets: Mapping[str, dict[str, Any]], settings: TimelineSettings
) -> dict[str, Any] | None:
    """PHQ-9 if its baseline was positive, else GAD-7 if positive, else whichever exists."""
    phq9, gad7 = targets.get("phq9"), targets.get("gad7")
    if phq9 is not None and phq9["baseline"]["total"] >= settings.phq9_positive:
        return phq9
    if gad7 is not None and gad7["baseline"]["total"] >= settings.gad7_positive:
        return gad7
    return phq9 or gad7
