"""The pages and actions: patient view, registry, and the writes a clinician makes.

Every state-changing route is a POST whose form carries the session's CSRF token
(``checked_form``); every write goes to the FHIR server the session launched from (or, in the
demo, to memory). Under patient-level scopes only the launch-context patient can be opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhir import FhirError
from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from bhi_fhir.sync.planning import write_provenance_key
from smart_app import smart, writes
from smart_app.data import ClinicSource, FhirSource
from smart_app.deps import (
    FormDep,
    Refusal,
    SessionDep,
    SettingsDep,
    StoreDep,
    TemplatesDep,
    render,
)
from smart_app.ehr_errors import ehr_refusal
from smart_app.roles import own_patient, require_care_team, require_clinician, role_of
from smart_app.sessions import Session
from smart_app.tokens import SessionAuth, TokenKeeper
from smart_app.views_model import patient_view

logger = logging.getLogger(__name__)

T = TypeVar("T")

router = APIRouter()

# The status notices an action's redirect may show: ``?notice=<key>`` (and ``count``, a whole
# number, where the message has one). Text from the URL is never shown as the app's message.
NOTICES = {
    "plan-applied": "plan applied: {count} writes",
    "time-logged": "{count} minutes logged",
    "time-already-logged": "{count} minutes were already logged from this form",
    "task-completed": "task completed",
    "task-reassigned": "task reassigned",
    "consent-recorded": "consent recorded",
    "consent-already-recorded": "consent was already recorded",
}


def notice_text(key: str | None, count: str | None) -> str | None:
    """The catalogue message for ``key``; None for an unknown key or a missing/odd count."""
    message = NOTICES.get(key or "")
    if message is None:
        return None
    if "{count}" not in message:
        return message
    if count is None or not count.isdigit() or len(count) > 6:
        return None
    return message.format(count=int(count))


def today_of(request: Request) -> date:
    """The practice's day (PracticePlan.today, billing.timezone), or the fixed demo/test day."""
    fixed = request.app.state.settings.today
    if fixed:
        return date.fromisoformat(fixed)
    plan = practice_plan(request)
    return plan.today() if plan is not None else datetime.now(UTC).date()  # no plan: UTC


def practice_plan(request: Request) -> PracticePlan | None:
    cached: PracticePlan | None = getattr(request.app.state, "practice_plan", None)
    if cached is not None:
        return cached
    path: Path | None = request.app.state.settings.practice_plan
    if path is None:
        from bhi_fhir.paths import examples_dir

        candidate = examples_dir() / "practice-plan.toml"
        path = candidate if candidate.is_file() else None
    plan = load_practice_plan(path) if path is not None else None
    request.app.state.practice_plan = plan
    return plan


async def clinic_source(
    request: Request, session: SessionDep, settings: SettingsDep, store: StoreDep
) -> AsyncIterator[ClinicSource]:
    """The session's data source: the token refreshed ahead of its expiry and renewed once
    after a 401 (smart_app.tokens); a session whose token is gone ends (SessionEnded)."""
    if session.demo:
        demo: ClinicSource = request.app.state.demo_source
        yield demo
        return
    assert session.token is not None and session.iss is not None
    keeper = TokenKeeper(request.app.state, session, settings, store)
    await keeper.ready()
    source = FhirSource(
        session.iss, keeper.access_token, settings.http_timeout, auth=SessionAuth(keeper)
    )
    try:
        yield source
    finally:
        await source.aclose()


SourceDep = Annotated[ClinicSource, Depends(clinic_source)]


def check_patient_access(session: Session, patient_id: str) -> None:
    """Under patient-level scopes only the launch-context patient may be opened."""
    if session.demo or session.token is None:
        return
    if smart.patient_level_only(session.token.scope) and patient_id != session.context.patient:
        logger.warning("refused: patient outside the launch context")
        raise Refusal(
            "Not allowed for this launch",
            "This launch was authorized for one patient only (patient-level scopes); another "
            "patient cannot be opened. Launch the app again from that patient's chart.",
            403,
        )


def malformed_resource(resources: list[dict[str, Any]]) -> str:
    """Which of a patient's resources does not validate as FHIR (R4B models), and why; or ''.

    Asked only once computing the patient's view failed, to name the culprit on the page.
    """
    from bhi_fhir.workflow.validate import validate_resource

    for resource in resources:
        if not isinstance(resource, dict):
            return "a resource that is not a JSON object"
        try:
            validate_resource(resource)
        except Exception as exc:  # ResourceInvalid, or a resource type the models lack
            return f"{resource.get('resourceType')}/{resource.get('id')} ({exc})"
    return ""


def _unreadable(what: str, exc: Exception) -> None:
    """Log a record the views could not compute: the error type and where, never its data."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    logger.warning("%s: a patient's record could not be read (%s at %s)",
                   what, type(exc).__name__, where)


def readable_view(compute: Callable[[], T], resources: list[dict[str, Any]], what: str) -> T:
    """``compute()``, or a 502 refusal naming the malformed resource: one bad record from the
    FHIR server costs that patient's page, never a 500."""
    try:
        return compute()
    except Exception as exc:
        _unreadable(what, exc)
        culprit = malformed_resource(resources)
        detail = f"{culprit} is malformed" if culprit else "it has data the app cannot read"
        raise Refusal(
            "This patient's record could not be read",
            f"The FHIR server returned this patient's record, but {detail}. Nothing is shown "
            "for this patient rather than a partial view; other patients are not affected. "
            "Ask your administrator to correct the record in the EHR.",
            502,
        ) from None


async def _load(source: ClinicSource, patient_id: str) -> list[dict[str, Any]]:
    try:
        return await source.patient_resources(patient_id)
    except FhirError as exc:
        raise ehr_refusal("Could not load the patient", exc) from None


@router.get("/")
async def home(request: Request, session: SessionDep) -> Response:
    patient = own_patient(session) if role_of(session).patient_facing else session.context.patient
    target = f"/patient/{patient}" if patient else "/registry"
    return RedirectResponse(target, status_code=303)


@router.get("/patient/{patient_id}")
async def patient_page(
    request: Request,
    patient_id: str,
    session: SessionDep,
    source: SourceDep,
    templates: TemplatesDep,
    notice: str | None = None,
    count: str | None = None,
) -> Response:
    check_patient_access(session, patient_id)
    role = role_of(session)
    if role.patient_facing:  # their own scores and questionnaires, no care-team screens
        from smart_app.portal import patient_home

        return await patient_home(request, patient_id, session, source, templates, notice)
    started = time.perf_counter()
    resources = await _load(source, patient_id)
    plan = practice_plan(request)
    view = readable_view(
        lambda: patient_view(resources, today_of(request), plan), resources, "patient page"
    )
    team = _team(plan)
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    return render(
        request,
        templates,
        "patient.html",
        {
            "session": session,
            "role": role,
            "view": view,
            "team": team,
            "notice": notice_text(notice, count),
            "chart": {"series": view.series, "bands": view.bands},
            "elapsed_ms": elapsed_ms,
            "fhir_requests": source.request_count,
            "today": today_of(request).isoformat(),
            # One id per rendered form: a double submit logs the time once (writes.py).
            "entry_id": uuid.uuid4().hex,
        },
    )


def _team(plan: PracticePlan | None) -> list[dict[str, str]]:
    if plan is None:
        return []
    members = [
        *plan.team.care_managers,
        plan.team.psychiatric_consultant,
        plan.team.billing_practitioner,
        plan.team.clinician_on_duty,
    ]
    seen: dict[str, dict[str, str]] = {}
    for m in members:
        seen.setdefault(m.reference, {"reference": m.reference, "display": m.display})
    return list(seen.values())


# --------------------------------------------------------------------------- workflow plan


async def _workflow_plan(source: ClinicSource, patient_id: str, request: Request) -> Any:
    """The protocol's plan for one patient, with the practice's caseloads.

    A new enrollment (and the engage/consent Tasks before it) goes to the care manager with the
    lowest active caseload (``bhi_fhir.workflow.assign_care_manager``). The caseloads are
    counted with one paged search for active BHI CarePlans (``count_caseloads``, by the
    contributor the workflow writes) — only when they can matter: the patient has no care
    manager of the plan yet and the plan has more than one.
    """
    plan = practice_plan(request)
    if plan is None:
        raise Refusal("No practice plan", "The app has no practice plan configured.", 500)
    try:
        from bhi_fhir.workflow import apply, count_caseloads
        from bhi_fhir.workflow.cli import default_protocol
    except ImportError:
        raise Refusal(
            "Workflow not available", "The workflow engine is not installed.", 501
        ) from None
    from smart_app.views_model import timeline_of

    resources = await _load(source, patient_id)
    timeline = readable_view(
        lambda: timeline_of(resources, today_of(request), plan), resources, "workflow plan"
    )
    caseloads: dict[str, int] | None = None
    managers = {m.reference for m in plan.team.care_managers}
    current = timeline.facts.get("enrollment", {}).get("contributors") or []
    if len(managers) > 1 and not managers & set(current):
        try:
            caseloads = count_caseloads(await source.active_bhi_careplans(), plan)
        except FhirError as exc:
            raise ehr_refusal("Could not count the caseloads", exc) from None
    return apply(default_protocol(), timeline, plan, caseloads=caseloads)


def _digest(bundle: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(bundle, sort_keys=True).encode()).hexdigest()


@router.get("/patient/{patient_id}/plan")
async def plan_preview(
    request: Request,
    patient_id: str,
    session: SessionDep,
    source: SourceDep,
    templates: TemplatesDep,
) -> Response:
    check_patient_access(session, patient_id)
    role = require_clinician(session)
    from bhi_fhir.workflow import to_transaction_bundle

    workflow = await _workflow_plan(source, patient_id, request)
    bundle = to_transaction_bundle(workflow)
    return render(
        request,
        templates,
        "plan.html",
        {
            "session": session,
            "role": role,
            "patient_id": patient_id,
            "plan": workflow,
            "digest": _digest(bundle),
            "bundle_json": json.dumps(bundle, indent=2),
        },
    )


@router.post("/patient/{patient_id}/plan/apply")
async def plan_apply(
    request: Request, patient_id: str, session: SessionDep, source: SourceDep, form: FormDep
) -> Response:
    check_patient_access(session, patient_id)
    require_care_team(session)
    from bhi_fhir.workflow import to_transaction_bundle

    workflow = await _workflow_plan(source, patient_id, request)
    bundle = to_transaction_bundle(workflow)
    if form.get("digest") != _digest(bundle):
        # The record changed since the preview: show the new plan rather than write blind.
        return RedirectResponse(f"/patient/{patient_id}/plan", status_code=303)
    if bundle["entry"]:
        user = writes.user_reference(session.context.fhir_user, session.iss)
        recorded = datetime.now(UTC)  # Provenance.recorded: an instant, UTC (not a day)
        provenance = []
        for write in workflow.writes:
            provenance.append(
                writes.provenance_entry(
                    [write.full_url],
                    key=write_provenance_key(write),
                    rule=write.rule,
                    reason=write.reason,
                    operation="CREATE" if write.method == "create" else "UPDATE",
                    user=user,
                    recorded=recorded,
                    sources=write.sources,
                )
            )
        try:
            await source.transaction(writes.transaction([*bundle["entry"], *provenance]))
        except FhirError as exc:
            raise ehr_refusal("The plan was not written", exc) from None
    logger.info("workflow plan applied: %d writes", len(bundle["entry"]))
    await _registry_after_write(request, session, source, patient_id)
    return _back(patient_id, "plan-applied", len(bundle["entry"]))


async def _registry_after_write(
    request: Request, session: Session, source: ClinicSource, patient_id: str
) -> None:
    """The patient's registry row read again after the app's own write (smart_app.registry)."""
    from smart_app.registry import refresh_after_write  # that module imports this one

    await refresh_after_write(request, session, source, patient_id)


def _back(patient_id: str, notice: str, count: int | None = None) -> Response:
    """Back to the patient page with a notice of the catalogue (``NOTICES``)."""
    from urllib.parse import quote, urlencode

    query = urlencode({"notice": notice} | ({"count": count} if count is not None else {}))
    return RedirectResponse(f"/patient/{quote(patient_id)}?{query}", status_code=303)


# --------------------------------------------------------------------------- other actions


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
    await _registry_after_write(request, session, source, patient_id)
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
    await _registry_after_write(request, session, source, patient_id)
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
    await _registry_after_write(request, session, source, patient_id)
    return _back(patient_id, "consent-recorded")


@router.post("/logout")
async def logout(
    request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep, form: FormDep
) -> Response:
    store.delete(session.id)
    response = RedirectResponse("/signed-out", status_code=303)
    response.delete_cookie(settings.cookie_name, path="/")
    return response


@router.get("/signed-out")
async def signed_out(request: Request, templates: TemplatesDep) -> Response:
    return render(
        request,
        templates,
        "refusal.html",
        {"title": "Signed out", "message": "Launch the app again from your EHR."},
    )
