"""The writes a clinician makes from the patient page: care-management time, a Task's status or
owner, and the patient's consent (a FHIR Consent).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response

from bhi_fhir.codes import BHI_IDENTIFIER, CONSENT_PROFILE, claims
from bhi_fhir.fhir import FhirError
from smart_app import writes
from smart_app.deps import (
    FormDep,
    Refusal,
    SessionDep,
)
from smart_app.ehr_errors import ehr_refusal
from smart_app.pages import (
    SourceDep,
    _back,
    _team,
    check_patient_access,
    practice_plan,
    router,
    today_of,
)
from smart_app.registry import refresh_after_write
from smart_app.roles import require_care_team

logger = logging.getLogger(__name__)



@router.post("/patient/{patient_id}/time")
async def log_time(
    request: Request, patient_id: str, session: SessionDep, source: SourceDep, form: FormDep
) -> Response:
    check_patient_access(session, patient_id)
    require_care_team(session)
    from bhi_fhir.billing.representation import time_entry

    try:
        minutes = int(form.get("minutes", ""))
    except ValueError:
        raise Refusal("Time not logged", "Minutes must be a whole number.") from None
    if not 1 <= minutes <= 240:
        raise Refusal("Time not logged", "Minutes must be between 1 and 240.")
    mode = form.get("mode", "phone")
    if mode not in ("in-person", "phone", "video"):
        raise Refusal("Time not logged", "Unknown contact mode.")
    entry_id = form.get("entry_id", "")
    if not re.fullmatch(r"[0-9a-f]{32}", entry_id):
        raise Refusal("Time not logged", "The form is out of date; reload the page.")
    plan = practice_plan(request)
    user = writes.user_reference(session.context.fhir_user, session.iss)
    clinician = user or (plan.team.care_managers[0].reference if plan else "Practitioner/unknown")
    # The entry's end is an instant (UTC); only a fixed demo/test day moves it to that day.
    now = datetime.now(UTC).replace(microsecond=0)
    end = now
    fixed = today_of(request)
    if fixed != (plan.today(now) if plan is not None else now.date()):
        end = datetime(fixed.year, fixed.month, fixed.day, 12, 0, tzinfo=UTC)
    identifier = f"time-entry:{patient_id}:{entry_id}"
    resource = time_entry(
        id=entry_id,
        patient=f"Patient/{patient_id}",
        clinician=clinician,
        start=end - timedelta(minutes=minutes),
        end=end,
        mode=mode,  # type: ignore[arg-type]
        identifier_system=BHI_IDENTIFIER,
        identifier_value=identifier,
    )
    bundle = writes.create_with_provenance(
        resource, identifier, reason="care-management time logged", user=user, recorded=now
    )
    try:
        response = await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Time not logged", exc) from None
    if not writes.created(response):
        logger.info("care-management time already logged (form sent again)")
        return _back(patient_id, "time-already-logged", minutes)
    logger.info("care-management time logged")
    await refresh_after_write(request, session, source, patient_id)
    return _back(patient_id, "time-logged", minutes)


@router.post("/patient/{patient_id}/task/{task_id}")
async def change_task(
    request: Request,
    patient_id: str,
    task_id: str,
    session: SessionDep,
    source: SourceDep,
    form: FormDep,
) -> Response:
    check_patient_access(session, patient_id)
    require_care_team(session)
    try:
        task = await source.read("Task", task_id)
    except FhirError as exc:
        raise ehr_refusal("Task not changed", exc) from None
    owner = (task.get("for") or {}).get("reference")
    if owner != f"Patient/{patient_id}":
        raise Refusal("Task not changed", "That task belongs to another patient.", 403)
    action = form.get("action")
    if action == "complete":
        task["status"] = "completed"
        task.setdefault("executionPeriod", {})["end"] = datetime.now(UTC).isoformat(
            timespec="seconds"
        )
        reason, notice = "task completed", "task-completed"
    elif action == "reassign":
        team = {m["reference"]: m for m in _team(practice_plan(request))}
        member = team.get(form.get("owner", ""))
        if member is None:
            raise Refusal("Task not changed", "Choose a member of the care team.")
        task["owner"] = {"reference": member["reference"], "display": member["display"]}
        reason, notice = f"task reassigned to {member['display']}", "task-reassigned"
    else:
        raise Refusal("Task not changed", "Unknown action.")
    version = (task.get("meta") or {}).get("versionId")
    bundle = writes.transaction(
        [
            writes.update_entry(task, version),
            writes.provenance_entry(
                [f"Task/{task_id}"],
                key=f"provenance:task:{task_id}:update:{version or 'unversioned'}",
                reason=reason,
                operation="UPDATE",
                user=writes.user_reference(session.context.fhir_user, session.iss),
                recorded=datetime.now(UTC),
                sources=[f"Task/{task_id}/_history/{version}"] if version else (),
            ),
        ]
    )
    try:
        await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Task not changed", exc) from None
    logger.info("task %s", action)
    await refresh_after_write(request, session, source, patient_id)
    return _back(patient_id, notice)


@router.post("/patient/{patient_id}/consent")
async def record_consent(
    request: Request, patient_id: str, session: SessionDep, source: SourceDep, form: FormDep
) -> Response:
    check_patient_access(session, patient_id)
    require_care_team(session)
    if form.get("confirm") != "yes":
        raise Refusal("Consent not recorded", "Confirm that the patient gave consent.")
    plan = practice_plan(request)
    scope = plan.consent.scope if plan else "treatment"
    consent = {
        "resourceType": "Consent",
        "meta": claims(CONSENT_PROFILE),
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": today_of(request).isoformat(),
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
    }
    user = writes.user_reference(session.context.fhir_user, session.iss)
    if user:
        consent["performer"] = [{"reference": user}]
    # One BHI consent per patient, scope and day: a repeated or double submit matches it.
    identifier = f"consent:{scope}:{patient_id}:{consent['dateTime']}"
    consent["identifier"] = [{"system": BHI_IDENTIFIER, "value": identifier}]
    bundle = writes.create_with_provenance(
        consent, identifier, reason="consent recorded", user=user, recorded=datetime.now(UTC)
    )
    try:
        response = await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Consent not recorded", exc) from None
    if not writes.created(response):
        return _back(patient_id, "consent-already-recorded")
    logger.info("consent recorded")
    await refresh_after_write(request, session, source, patient_id)
    return _back(patient_id, "consent-recorded")
