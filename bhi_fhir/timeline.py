"""A patient's facts over time: resources + scores + ``today`` → :class:`Timeline`. Pure.

The facts are a plain JSON-shaped dict, so the protocol's FHIRPath conditions can read them as
``%facts``. Shape (``None`` values are omitted so FHIRPath sees empty)::

    patient            "Patient/<id>"
    sex                Patient.gender ("female", "male", ...)
    today              "YYYY-MM-DD"
    scores             every screen (response or screening Observations), oldest first
                       (see ``_score_fact``); ``suicideItemUnknown`` when a total came
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
    contacts           {count, last, daysWithout}: care-manager contacts (see ``_contact_date``)
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

Care-manager contacts (AIMS Center "contact count and last contact date"): a finished or in-progress
Encounter, or a completed/in-progress Procedure, coded BHI_ACTIVITY ``care-management-contact``
(the billing ledger's entries), plus a *completed* engage or outreach Task that bhi-fhir
generated: completing that Task records that the care manager reached the patient.

The patient's own record is the Patient whose id matches ``patient`` (after a merge the
surviving record's resources and the replaced record's may be read together); ``deceased``
(FHIR R4 Patient.deceased[x], https://hl7.org/fhir/R4/patient.html) keeps a partial
deceasedDateTime as its earliest (``date``) and latest (``latest``) possible day.

Crisis episodes: crisis responses (``crises``) not yet covered by a finished (terminal)
crisis request of the same rule form one open episode, so several unassessed crisis screens
give one same-day assessment, updated with the newest evidence, not one ServiceRequest each
(a second request for the same unresolved risk is noise). An episode keeps the identifier key
of its open request, else of its oldest response (deterministic: rule + source), lists every
response as evidence (``evidence``) and takes reason and date from the newest. A response
counts as covered once a terminal request lists it (identifier key, ``supportingInfo`` or
``reasonReference``). Referrals form one episode per C-SSRS risk: an escalation to a higher
risk is a new referral.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any

from bhi_fhir.codes import (
    BHI_ACTIVITY,
    BHI_IDENTIFIER,
    BHI_PROTOCOL,
    CARE_MANAGEMENT_CONTACT,
    MENTAL_HEALTH_CARE_PLAN,
    SNOMED,
)
from bhi_fhir.fhirjson import Resource, patient_of, replaced_by
from bhi_fhir.fhirjson import day as _day  # the day a date/dateTime is written on
from bhi_fhir.fhirjson import day_in as _practice_day  # that day in the practice's zone
from bhi_fhir.fhirjson import day_range as _death_days  # the days a partial date can mean
from bhi_fhir.instruments.result import ENTERED_IN_ERROR, SUICIDE_RISK, Score

__all__ = [
    "LABELS",
    "OWN_ENROLLMENT",
    "TERMINAL_STATUSES",
    "EnrollmentRule",
    "Timeline",
    "TimelineSettings",
    "build_timeline",
    "full_url_for",
    "is_enrollment",
    "is_future_dated",
    "patient_of",
    "practice_day",
    "replaced_by",
    "rule_of_identifier",
]


# Statuses after which a request is finished; a generated resource in one of these is never
# reopened by the same trigger. Task (FHIR R4 Task status), ServiceRequest/CarePlan (revoked).
TERMINAL_STATUSES = frozenset(
    {"completed", "cancelled", "failed", "rejected", "entered-in-error", "revoked"}
)
_CONTACT_TASK_CODES = frozenset({"engage", "outreach"})
_PHQ9_ITEM9 = "44260-8"  # LOINC, PHQ-9 item 9
_SUICIDE_ITEM_UNKNOWN = "suicide-item-unknown"  # observation_scores.SUICIDE_ITEM_UNKNOWN
_MEASURES = ("phq9", "gad7")  # treat-to-target instruments, NCQA DRR-E
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


def is_enrollment(resource: Resource, rule: EnrollmentRule = OWN_ENROLLMENT) -> bool:
    """True for an active CarePlan that ``rule`` recognises as the practice's BHI plan."""
    if resource.get("resourceType") != "CarePlan" or resource.get("status") != "active":
        return False
    if any(
        isinstance(i, Mapping) and i.get("system") in rule.identifier_systems
        for i in resource.get("identifier") or []
    ):
        return True
    return any(
        isinstance(c, str) and c.split("|", 1)[0] in rule.instantiates
        for c in resource.get("instantiatesCanonical") or []
    )


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


def rule_of_identifier(value: str) -> str:
    """``"enroll.careplan:…"`` → ``"enroll"``."""
    return value.split(":", 1)[0].split(".", 1)[0]


def full_url_for(identifier: str) -> str:
    """A stable ``urn:uuid`` for a generated resource not yet on a server (from its business
    identifier): its ``fullUrl`` in the transaction Bundle, and how a later run refers to it
    when it reads that Bundle back (the resource has no server id yet)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{BHI_IDENTIFIER}|{identifier}')}"


def _ref(resource: Resource) -> str:
    ident = resource.get("id")
    if ident is None and (value := _identifier(resource)) is not None:
        return full_url_for(value)  # a conditional create read back from a Bundle
    return f"{resource.get('resourceType')}/{ident}"


def _version(resource: Resource) -> str | None:
    meta = resource.get("meta")
    if isinstance(meta, Mapping):
        version = meta.get("versionId")
        if isinstance(version, str | int):
            return str(version)
    return None


def _versioned(ref: str, version: str | None) -> str:
    return f"{ref}/_history/{version}" if version else ref


def _is_future(value: Any, today: date, zone: tzinfo | None) -> bool:
    """True when ``value`` is after ``today`` at its own precision (a "2026-12" is after any
    day of November 2026; FHIR R4 dateTime allows year and year-month)."""
    day = _practice_day(value, zone)
    if day is not None:
        return day > today
    if not isinstance(value, str) or len(value) not in (4, 7):
        return False
    try:
        year, month = int(value[:4]), int(value[5:7]) if len(value) == 7 else 0
    except ValueError:
        return False
    return (year, month) > (today.year, today.month if month else 0)


def is_future_dated(value: Any, today: date, zone: tzinfo | None) -> bool:
    """A screen authored (``value``) after ``today`` in the practice's ``zone``: no fact."""
    return _is_future(value, today, zone)


def practice_day(value: Any, zone: tzinfo | None) -> date | None:
    """The calendar day of a FHIR date/dateTime in the practice's ``zone`` (None: unreadable)."""
    return _practice_day(value, zone)


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


def _score_fact(
    score: Score, versions: Mapping[str, str | None], today: date, zone: tzinfo | None
) -> dict[str, Any]:
    ref = score.response_ref or ""
    day = _practice_day(score.authored, zone)
    low, high = score.bounds or (None, None)
    # What a rule's reason shows: the total, or what an incomplete response's answers reach.
    text = (str(score.total) if score.total is not None
            else f"at least {low} (incomplete)" if low is not None else None)
    return _prune(
        {
            "instrument": score.instrument,
            "label": LABELS.get(score.instrument or "", score.instrument),
            "status": score.status,
            "total": score.total,
            # Lowest/highest total the answers allow (= total when complete): a rule tests
            # ``totalAtLeast >= cut point`` so a certainly-positive incomplete screen counts.
            "totalAtLeast": low,
            "totalAtMost": high,
            "totalText": text,
            "severity": score.severity,
            "positive": score.positive,
            "complete": score.complete,
            "flags": list(score.flags),
            # A total read without its suicide item (a flowsheet or Synthea total): the risk
            # is unknown, not absent — the rules ask the clinician (observation_scores).
            "suicideItemUnknown": True if _SUICIDE_ITEM_UNKNOWN in score.flags else None,
            "items": dict(score.items),
            "response": ref or None,
            "source": _versioned(ref, versions.get(ref)) if ref else None,
            "date": day.isoformat() if day else None,
            "daysAgo": (today - day).days if day else None,
        }
    )


def _crisis_reasons(score: Score) -> list[str]:
    """Why a response needs a same-day assessment (PHQ-9 item 9, Kroenke 2001; PHQ-A suicide items,
    NIMH ASQ toolkit; C-SSRS risk, Columbia triage; EPDS item 10), or []."""
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
    if reasons and not score.final:  # a crisis answer is never lost, final or not
        reasons.append(f"response {score.status or 'without status'}, not final")
    return reasons


def _unversioned(ref: str) -> str:
    return ref.split("/_history/", 1)[0]


def _own_record(patient: str, resources: Sequence[Resource]) -> Resource | None:
    """The Patient resource that is ``patient`` (else the only Patient among ``resources``)."""
    records = [r for r in resources if r.get("resourceType") == "Patient"]
    for record in records:
        if f"Patient/{record.get('id')}" == patient:
            return record
    return records[0] if len(records) == 1 else None


def _record_facts(record: Resource | None) -> dict[str, Any]:
    """``deceased`` and ``inactive`` from the patient's own record; absent fields say nothing."""
    facts: dict[str, Any] = {}
    if record is None:
        return facts
    days = _death_days(record.get("deceasedDateTime"))
    if days is not None:
        facts["deceased"] = {"date": days[0].isoformat(), "latest": days[1].isoformat()}
    elif record.get("deceasedBoolean") is True:
        facts["deceased"] = {}
    successor = replaced_by(record)
    if record.get("active") is False or successor is not None:
        facts["inactive"] = _prune({"replacedBy": successor})
    return facts


def _evidence_of(resource: Resource) -> list[str]:
    refs: list[str] = []
    value = _identifier(resource)
    if value is not None and ":" in value:
        refs.append(_unversioned(value.split(":", 1)[1]))
    reasons = resource.get("reasonReference")
    for item in [*(resource.get("supportingInfo") or []), *(
        reasons if isinstance(reasons, list) else [reasons]
    )]:
        ref = item.get("reference") if isinstance(item, Mapping) else None
        if isinstance(ref, str) and ref.startswith("QuestionnaireResponse/"):
            refs.append(_unversioned(ref))
    return list(dict.fromkeys(refs))


def _crisis_episodes(
    crises: Sequence[dict[str, Any]],
    generated: Sequence[Resource],
    group_of: Callable[[str], str | None],
) -> list[dict[str, Any]]:
    """The open crisis episodes of one rule to write (see "Crisis episodes" above).

    ``generated`` are the patient's resources with that rule's identifier; ``group_of`` maps a
    response to its episode group (None: in no episode of this rule). The resources sharing a
    key are one request: once any of them is terminal (the clinician completed the Task) the
    request is finished and its responses are covered.
    """
    requests: dict[str, list[Resource]] = {}
    for resource in generated:
        value = _identifier(resource) or ""
        requests.setdefault(value.split(":", 1)[1] if ":" in value else "", []).append(resource)
    covered: set[str] = set()
    open_: dict[str, tuple[str, list[str], str | None]] = {}
    for key, parts in sorted(
        requests.items(),
        key=lambda kv: (min(str(r.get("authoredOn") or "") for r in kv[1]), kv[0]),
    ):
        evidence = list(dict.fromkeys(ref for r in parts for ref in _evidence_of(r)))
        if any(r.get("status") in TERMINAL_STATUSES for r in parts):
            covered.update(evidence)
            continue
        group = group_of(_unversioned(key))
        if group is not None and group not in open_:
            since = min((str(r["authoredOn"]) for r in parts if r.get("authoredOn")), default=None)
            open_[group] = (key, evidence, since)
    pending: dict[str, list[dict[str, Any]]] = {}
    for crisis in crises:
        response = str(crisis.get("response") or "")
        group = group_of(response)
        if group is None or response in covered:
            continue
        pending.setdefault(group, []).append(crisis)
    episodes = []
    for group in sorted(pending):
        items = pending[group]
        newest = items[-1]
        key, evidence, since = open_.get(group) or (
            str(items[0].get("source")), [], items[0].get("date")
        )
        refs = list(dict.fromkeys([*evidence, *(str(c.get("response")) for c in items)]))
        sources = list(dict.fromkeys([key, *(str(c.get("source")) for c in items)]))
        episodes.append(
            _prune(
                {
                    **newest,
                    "key": key,
                    "since": since,
                    "evidence": [{"reference": ref} for ref in refs],
                    "sources": sources,
                    "count": len(refs),
                }
            )
        )
    return episodes


def _enrollment(resources: Sequence[Resource], rule: EnrollmentRule) -> Resource | None:
    plans = [r for r in resources if is_enrollment(r, rule)]
    if not plans:
        return None
    # The most recent enrollment wins; ties broken by id for a stable answer.
    return max(plans, key=lambda r: (str((r.get("period") or {}).get("start", "")), _ref(r)))


def _completed_care(resources: Sequence[Resource], rule: EnrollmentRule) -> dict[str, Any] | None:
    """The newest completed BHI CarePlan (``rule`` recognises it, as it would the active one)
    with the day care ended (``period.end``); None when there is none or it has no end."""
    done = [
        (end, r) for r in resources
        if r.get("resourceType") == "CarePlan" and r.get("status") == "completed"
        and is_enrollment({**r, "status": "active"}, rule)
        and (end := _day((r.get("period") or {}).get("end"))) is not None
    ]
    if not done:
        return None
    end, plan = max(done, key=lambda pair: (pair[0], _ref(pair[1])))
    return {"carePlan": _ref(plan), "source": _versioned(_ref(plan), _version(plan)),
            "end": end.isoformat()}


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
    """Baseline → latest for one instrument (NCQA DRR-E), or None without a baseline."""
    if start is None:
        return None
    since = date.fromordinal(start.toordinal() - settings.baseline_lookback_days)
    series = [
        fact
        for score, fact in scores
        if score.instrument == instrument
        and score.complete
        and score.total is not None
        and (day := _practice_day(score.authored, settings.zone)) is not None
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
    for resource in resources:
        if resource.get("resourceType") == "QuestionnaireResponse":
            versions[_ref(resource)] = _version(resource)
    record = _own_record(patient, resources)
    gender = record.get("gender") if record is not None else None
    sex = gender if isinstance(gender, str) else None

    current = [s for s in scores if s.instrument is not None and s.status != ENTERED_IN_ERROR]
    # A screen authored after today is not a screen of today (a device clock, a typo): it is
    # no fact, only counted (Timeline.future_dated), compared by day in the practice's zone.
    future = {id(s) for s in current if _is_future(s.authored, today, settings.zone)}
    ordered = sorted(  # an entered-in-error response is no fact at all
        (s for s in current if id(s) not in future),
        key=lambda s: (s.authored or "", s.response_ref or ""),
    )
    pairs = [(s, _score_fact(s, versions, today, settings.zone)) for s in ordered]
    latest: dict[str, dict[str, Any]] = {}
    for score, fact in pairs:
        if score.instrument is not None and score.final:  # in-progress/stopped: not a screen
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
    facts.update(_record_facts(record))

    plan = _enrollment(resources, settings.enrollment)
    others = [
        _prune({"carePlan": _ref(r), "title": r.get("title"),
                "start": (d.isoformat() if (d := _day((r.get("period") or {}).get("start")))
                          else None)})
        for r in resources
        if r.get("resourceType") == "CarePlan" and r.get("status") == "active"
        and _has_code(r.get("category"), SNOMED, MENTAL_HEALTH_CARE_PLAN)
        and not is_enrollment(r, settings.enrollment)
    ]
    if others:
        facts["otherCarePlans"] = sorted(others, key=lambda o: o["carePlan"])
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

    if (completed := _completed_care(resources, settings.enrollment)) is not None:
        facts["careCompleted"] = completed

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
        if s.instrument in _MEASURES and s.complete
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
    for resource in resources:
        value = _identifier(resource)
        if value is None:
            continue
        if value in existing and existing[value].get("id") and not resource.get("id"):
            continue  # the server's copy outranks the same create read back from a Bundle
        existing[value] = dict(resource)
    entries = [
        _prune(
            {
                "identifier": value,
                "rule": rule_of_identifier(value),
                "reference": _ref(resource),
                "resourceType": resource.get("resourceType"),
                "status": resource.get("status"),
                "version": _version(resource),
                "active": resource.get("status") not in TERMINAL_STATUSES,
            }
        )
        for value, resource in existing.items()
    ]
    entries.sort(key=lambda e: str(e["identifier"]))
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
    facts["crisisAssessments"] = _crisis_episodes(
        crises, by_rule.get("crisis-assessment", []), lambda _: ""
    )
    facts["crisisReferrals"] = _crisis_episodes(
        crises, by_rule.get("crisis-referral", []), risks.get
    )
    return Timeline(patient=patient, facts=facts, existing=existing, future_dated=len(future))


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
