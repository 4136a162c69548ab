"""The patient pages: home, the patient page and sign-out. The workflow plan (plan_views) and
the writes a clinician makes (record_views) add their routes to the same router (smart_app.pages).

Every state-changing route is a POST whose form carries the session's CSRF token
(``checked_form``); every write goes to the FHIR server the session launched from (or, in the
demo, to memory). Under patient-level scopes only the launch-context patient can be opened.
"""

from __future__ import annotations

import time
import uuid

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from smart_app import plan_views, record_views  # noqa: F401  (their routes join the router)
from smart_app.deps import (
    FormDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TemplatesDep,
    render,
)
from smart_app.pages import (
    NOTICES,
    SourceDep,
    _load,
    _team,
    check_patient_access,
    notice_text,
    practice_plan,
    readable_view,
    router,
    today_of,
)
from smart_app.roles import own_patient, role_of
from smart_app.views_model import patient_view

# Re-exported for cds, the dashboard and the tests, which read them from here.
__all__ = ["NOTICES", "SourceDep", "_load", "practice_plan", "readable_view", "router", "today_of"]


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

