"""The patient page's workflow plan: preview the writes the protocol proposes, and apply them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from bhi_fhir.fhir import FhirError
from bhi_fhir.sync.planning import write_provenance_key
from smart_app import writes
from smart_app.data import ClinicSource
from smart_app.deps import (
    FormDep,
    Refusal,
    SessionDep,
    TemplatesDep,
    render,
)
from smart_app.ehr_errors import ehr_refusal
from smart_app.pages import (
    SourceDep,
    _back,
    _load,
    check_patient_access,
    practice_plan,
    readable_view,
    router,
    today_of,
)
from smart_app.registry import refresh_after_write
from smart_app.roles import require_care_team, require_clinician

logger = logging.getLogger(__name__)



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
        from bhi_fhir.workflow.protocol import default_protocol
    except ImportError:
        raise Refusal(
            "Workflow not available", "The workflow engine is not installed.", 501
        ) from None
    from bhi_fhir.registry.rows import timeline_of

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
    await refresh_after_write(request, session, source, patient_id)
    return _back(patient_id, "plan-applied", len(bundle["entry"]))
