"""Builders for workflow tests: Scores and resources for one synthetic patient."""

from __future__ import annotations

import functools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bhi_fhir.codes import (
    ASSESS_PLAN,
    BHI_ACTIVITY,
    BHI_IDENTIFIER,
    CARE_MANAGEMENT_CONTACT,
    CAREPLAN_CATEGORY_US_CORE,
    CONSENT_SCOPE,
    MENTAL_HEALTH_CARE_PLAN,
    SNOMED,
)
from bhi_fhir.instruments.result import SUICIDE_RISK, Score
from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from bhi_fhir.timeline import Timeline, build_timeline
from bhi_fhir.workflow import PlannedWrite, Protocol, apply, load_protocol, timeline_settings

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 26)
PATIENT = "Patient/p1"
PHQ9_ITEM9 = "44260-8"


@functools.cache
def protocol() -> Protocol:
    files = sorted((ROOT / "profiles" / "plandefinitions").glob("*.json")) + sorted(
        (ROOT / "profiles" / "activitydefinitions").glob("*.json")
    )
    return load_protocol(json.loads(p.read_text()) for p in files)


@functools.cache
def plan() -> PracticePlan:
    return load_practice_plan(ROOT / "examples" / "practice-plan.toml")


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


_counter = iter(range(1, 1_000_000))


def score(
    instrument: str,
    total: int | None,
    days_ago: int = 0,
    *,
    item9: int | None = None,
    risk: str | None = None,
    ident: str | None = None,
) -> Score:
    ident = ident or f"qr{next(_counter)}"
    items: dict[str, int] = {}
    flags: tuple[str, ...] = ()
    if item9 is not None:
        items[PHQ9_ITEM9] = item9
        if item9 > 0:
            flags = (SUICIDE_RISK,)
    if risk is not None:
        flags = (SUICIDE_RISK,)
    return Score(
        instrument=instrument,  # type: ignore[arg-type]
        total=total,
        severity=risk,
        positive=None,
        complete=total is not None or risk is not None,
        flags=flags,
        items=items,
        response_ref=f"QuestionnaireResponse/{ident}",
        subject_ref=PATIENT,
        authored=day(days_ago),
    )


def careplan(start_days_ago: int, ident: str = "cp1", status: str = "active") -> dict[str, Any]:
    """The BHI CarePlan bhi-fhir's enroll rule wrote (its identifier)."""
    return {
        "resourceType": "CarePlan",
        "id": ident,
        "meta": {"versionId": "1"},
        "identifier": [{"system": BHI_IDENTIFIER, "value": f"enroll.careplan:{ident}"}],
        "status": status,
        "intent": "plan",
        "category": [
            {"coding": [{"system": CAREPLAN_CATEGORY_US_CORE, "code": ASSESS_PLAN}]},
            {"coding": [{"system": SNOMED, "code": MENTAL_HEALTH_CARE_PLAN}]},
        ],
        "subject": {"reference": PATIENT},
        "period": {"start": day(start_days_ago)},
    }


def consent(days_ago: int = 10, ident: str = "c1") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": ident,
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": PATIENT},
        "dateTime": day(days_ago),
    }


def contact(days_ago: int, ident: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": ident or f"enc{next(_counter)}",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": BHI_ACTIVITY, "code": CARE_MANAGEMENT_CONTACT}]}],
        "subject": {"reference": PATIENT},
        "period": {"start": day(days_ago)},
    }


def patient(gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "gender": gender}


def timeline(
    scores: list[Score], resources: list[dict[str, Any]] | None = None, today: date = TODAY
) -> Timeline:
    return build_timeline(
        PATIENT, resources or [], scores, today, timeline_settings(plan())
    )


def fired(
    scores: list[Score], resources: list[dict[str, Any]] | None = None, today: date = TODAY
) -> dict[str, list[PlannedWrite]]:
    """Rule id → its writes, for one patient."""
    result: dict[str, list[PlannedWrite]] = {}
    for write in apply(protocol(), timeline(scores, resources, today), plan()).writes:
        result.setdefault(write.rule, []).append(write)
    return result


def persist(writes: list[PlannedWrite]) -> list[dict[str, Any]]:
    """What a server holds after the transaction: ids assigned, urn:uuid references resolved."""
    ids = {
        w.full_url: f"{w.resource_type}/{w.resource.get('id') or f'gen{index}'}"
        for index, w in enumerate(writes)
    }
    stored = []
    for w in writes:
        text = json.dumps(w.resource)
        for urn, ref in ids.items():
            text = text.replace(urn, ref)
        resource = json.loads(text)
        resource["id"] = ids[w.full_url].split("/", 1)[1]
        version = int((resource.get("meta") or {}).get("versionId", "0")) + 1
        resource["meta"] = {"versionId": str(version)}
        stored.append(resource)
    return stored
