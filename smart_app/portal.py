"""The patient-facing view: a Patient (or RelatedPerson) who launched the app sees their own
scores over time and the screening questionnaires to fill in — nothing of the care team's.

* ``GET /patient/{id}`` (views.patient_page hands a patient-facing role here): the scores,
  charted with the severity bands, and the questionnaires of ``QUESTIONNAIRES``.
* ``GET /patient/{id}/questionnaire/{name}``: the questionnaire as a form, built from the
  bundled Questionnaire (profiles/questionnaires), one radio group per item.
* ``POST`` to the same path: the answers as a QuestionnaireResponse (``completed``, the
  Questionnaire's canonical, the patient as subject, the user as author and source), scored by
  the one scorer (``bhi_fhir.instruments.score_response``) before anything is written — a
  response missing a required answer is sent back, never stored — then written with its
  Provenance in one transaction, conditional on a per-form identifier (a double submit stores
  it once). A response with a suicide-risk answer shows the practice's crisis line at once.

A patient-facing user may open only their own record (``roles.own_patient``).

Feedback (profiles/questionnaires/feedback, the Tasks of ``bhi_fhir.workflow.feedback``) goes
the same way, each item optional (a form with no answer at all is sent back):

* the **patient experience survey** (``patient-experience``) in the patient's portal, and by
  the care team for the patient on a call (the care manager the author, the patient the
  ``source``: who gave the answers; the patient's open survey Task completed in the same
  transaction, its output the response). A patient who does not know whom to contact in a
  crisis (or is not sure) sees the practice's crisis line on the saved page;
* the **staff workflow survey** at ``/feedback/staff``: any clinician of the care team, for
  themself (author and source; no subject). The EHR must let the user create that
  QuestionnaireResponse (a ``user/QuestionnaireResponse.c`` scope).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhir import FhirError
from bhi_fhir.instruments import score_response
from bhi_fhir.paths import profiles_dir
from bhi_fhir.timeline import TERMINAL_STATUSES
from bhi_fhir.workflow.feedback import PATIENT_RULE
from smart_app import writes
from smart_app.data import ClinicSource
from smart_app.deps import FormDep, Refusal, SessionDep, TemplatesDep, render
from smart_app.ehr_errors import ehr_refusal
from smart_app.pages import SourceDep, _back, _load, practice_plan, readable_view, today_of
from smart_app.roles import (
    own_patient,
    require_care_team,
    require_clinician,
    role_of,
    user_type,
)
from smart_app.sessions import Session
from smart_app.views_model import patient_view

logger = logging.getLogger(__name__)

router = APIRouter()

QUESTIONNAIRES = ("phq9", "gad7")  # the screens the registry tracks over time
PATIENT_FEEDBACK = "patient-experience"  # the patient experience survey
STAFF_FEEDBACK = "staff-workflow"  # the staff workflow survey
# name → file under profiles/questionnaires
_FILES = {"phq9": "phq9", "gad7": "gad7", PATIENT_FEEDBACK: "feedback/patient-experience",
          STAFF_FEEDBACK: "feedback/staff-workflow"}
PATIENT_FORMS = (*QUESTIONNAIRES, PATIENT_FEEDBACK)  # what the portal offers
_FORM_ID = re.compile(r"[0-9a-f]{32}")

NOTICES = {
    "saved": "Thank you: your answers were saved and your care team will see them.",
    "already-saved": "These answers were already saved.",
    "saved-crisis": "Thank you: your answers were saved and your care team will see them.",
    "feedback-saved": "Thank you: your feedback was saved.",
    "feedback-saved-line": "Thank you: your feedback was saved.",
}
# The survey item asking whether the patient knows whom to contact in a crisis: answered "no"
# or "not sure", the saved page shows the practice's crisis line (the crisis protocol's first
# level, someone to contact: SAMHSA 2020).
_KNOWS_CRISIS_CONTACT = "knows-crisis-contact"


@lru_cache
def questionnaire(name: str) -> dict[str, Any]:
    """A bundled Questionnaire: a screen or a feedback survey (profiles/questionnaires)."""
    data: dict[str, Any] = json.loads(
        (profiles_dir() / "questionnaires" / f"{_FILES[name]}.json").read_text(encoding="utf-8")
    )
    return data


def check_own_patient(session: Session, patient_id: str) -> None:
    """A patient-facing user opens their own record only."""
    if patient_id != own_patient(session):
        logger.warning("refused: a patient-facing user asked for another record")
        raise Refusal("Not allowed", "You can open your own record only.", 403)


def _require_patient(session: Session, patient_id: str, name: str) -> bool:
    """Who may fill in ``name`` for ``patient_id``: the patient themself (their own record
    only), or, for the patient experience survey only, the care team recording it on a call.
    True when it is the care team."""
    if name not in PATIENT_FORMS:
        raise Refusal("No such questionnaire", "Choose a questionnaire from your page.", 404)
    role = role_of(session)
    if role.patient_facing:
        check_own_patient(session, patient_id)
        return False
    if name == PATIENT_FEEDBACK:
        require_care_team(session)
        return True
    raise Refusal("Not available", "The questionnaires are filled in by the patient.", 403)


def _open_survey_task(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The patient's open patient-feedback Task (the workflow's, on the server), if any."""
    for resource in resources:
        if (resource.get("resourceType") == "Task" and resource.get("id")
                and resource.get("status") not in TERMINAL_STATUSES
                and any(str(i.get("value", "")).startswith(f"{PATIENT_RULE}:")
                        for i in resource.get("identifier") or []
                        if i.get("system") == BHI_IDENTIFIER)):
            return resource
    return None


def _task_done(
    task: dict[str, Any], response_url: str, user: str | None, now: datetime
) -> list[dict[str, Any]]:
    """The survey Task completed (its output the recorded response) with its Provenance."""
    done = dict(task)
    done["status"] = "completed"
    done["executionPeriod"] = {**(task.get("executionPeriod") or {}),
                               "end": now.isoformat(timespec="seconds")}
    done["output"] = [*(task.get("output") or []), {
        "type": {"text": "questionnaire response"}, "valueReference": {"reference": response_url}}]
    version = (task.get("meta") or {}).get("versionId")
    return [
        writes.update_entry(done, version),
        writes.provenance_entry(
            [f"Task/{task['id']}"],
            key=f"provenance:task:{task['id']}:update:{version or 'unversioned'}",
            reason="patient experience survey recorded on a call",
            operation="UPDATE",
            user=user,
            recorded=now,
            sources=[f"Task/{task['id']}/_history/{version}"] if version else (),
        ),
    ]


def _needs_crisis_line(response: dict[str, Any]) -> bool:
    return any(
        item["linkId"] == _KNOWS_CRISIS_CONTACT
        and item["answer"][0]["valueCoding"].get("code") in ("no", "not-sure")
        for item in response.get("item") or []
    )


def answered(q: dict[str, Any], response: dict[str, Any]) -> bool:
    """Whether a feedback response can be stored: at least one answer, and every item the
    Questionnaire marks required answered (the feedback surveys mark none)."""
    given = {item["linkId"] for item in response.get("item") or []}
    required = {i["linkId"] for i in q.get("item") or [] if i.get("required")}
    return bool(given) and required <= given


async def patient_home(
    request: Request,
    patient_id: str,
    session: Session,
    source: ClinicSource,
    templates: Any,
    notice: str | None,
) -> Response:
    """The patient-facing page (called by views.patient_page for a patient-facing role)."""
    check_own_patient(session, patient_id)
    resources = await _load(source, patient_id)
    plan = practice_plan(request)
    view = readable_view(
        lambda: patient_view(resources, today_of(request), plan), resources, "patient page"
    )
    return render(
        request,
        templates,
        "portal.html",
        {
            "session": session,
            "view": view,
            "chart": {"series": view.series, "bands": view.bands},
            "questionnaires": [(n, questionnaire(n).get("title", n)) for n in PATIENT_FORMS],
            "notice": NOTICES.get(notice or ""),
            "crisis_line": _crisis_line(request)
            if notice in ("saved-crisis", "feedback-saved-line") else None,
            "crisis_info": notice == "feedback-saved-line",
            "related": user_type(session.context.fhir_user) == "RelatedPerson",
        },
    )


def _crisis_line(request: Request) -> dict[str, str] | None:
    """The practice plan's 988 entry (its crisis directory), for a suicide-risk answer."""
    plan = practice_plan(request)
    if plan is None:
        return None
    entry = plan.crisis.directory.get("988")
    if entry is None:
        return None
    return {"name": entry.name, "phone": entry.phone or "", "url": entry.url or ""}


@router.get("/patient/{patient_id}/questionnaire/{name}")
async def questionnaire_form(
    request: Request, patient_id: str, name: str, session: SessionDep, templates: TemplatesDep
) -> Response:
    on_call = _require_patient(session, patient_id, name)
    return render(
        request,
        templates,
        "questionnaire.html",
        {
            "session": session,
            "patient_id": patient_id,
            "name": name,
            "q": questionnaire(name),
            "form_id": uuid.uuid4().hex,  # one per rendered form: a double submit stores once
            "on_call": on_call,
            "action": f"/patient/{patient_id}/questionnaire/{name}",
            "back": f"/patient/{patient_id}",
        },
    )


def response_from_form(
    q: dict[str, Any], form: dict[str, str], patient_id: str | None, author: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The QuestionnaireResponse the form's answers make (answer values are option indexes)."""
    items = []
    for item in q.get("item") or []:
        options = item.get("answerOption") or []
        chosen = form.get(f"item-{item['linkId']}", "")
        if not chosen.isdigit() or int(chosen) >= len(options):
            continue
        items.append(
            {
                "linkId": item["linkId"],
                "text": item.get("text"),
                "answer": [{"valueCoding": options[int(chosen)]["valueCoding"]}],
            }
        )
    canonical = q["url"] + (f"|{q['version']}" if q.get("version") else "")
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "authored": now.isoformat(timespec="seconds"),
        "item": items,
    }
    if patient_id is not None:  # the staff survey is about the workflow, not a patient
        response["subject"] = {"reference": f"Patient/{patient_id}"}
    if author:
        response["author"] = {"reference": author}
        response["source"] = {"reference": author}
    return response


@router.post("/patient/{patient_id}/questionnaire/{name}")
async def questionnaire_submit(
    request: Request,
    patient_id: str,
    name: str,
    session: SessionDep,
    source: SourceDep,
    form: FormDep,
) -> Response:
    on_call = _require_patient(session, patient_id, name)
    form_id = form.get("form_id", "")
    if not _FORM_ID.fullmatch(form_id):
        raise Refusal("Not saved", "The form is out of date; open it again.")
    q = questionnaire(name)
    now = datetime.now(UTC).replace(microsecond=0)
    author = writes.user_reference(session.context.fhir_user, session.iss)
    response = response_from_form(q, form, patient_id, author, now)
    suicide_risk = False
    if name == PATIENT_FEEDBACK:  # a survey, not a screen: nothing to score
        if not answered(q, response):
            raise Refusal("Not saved yet", "Please answer at least one question.")
        if on_call:  # the care manager records; the patient gave the answers
            response["source"] = {"reference": f"Patient/{patient_id}"}
    else:
        score = score_response(response, questionnaire=q)  # the one scorer
        if not score.complete:
            raise Refusal(
                "Not saved yet",
                "Please answer every question marked as required, then send the form again.",
            )
        suicide_risk = score.suicide_risk
    identifier = f"patient-entry:{name}:{patient_id}:{form_id}"
    response["identifier"] = {"system": BHI_IDENTIFIER, "value": identifier}
    bundle = writes.create_with_provenance(
        response,
        identifier,
        reason="patient experience survey recorded by the care team on a call" if on_call
        else "questionnaire answered by the patient",
        user=author,
        recorded=now,
    )
    if on_call:  # the care team's open survey Task is done: completed, its output the answers
        task = _open_survey_task(await _load(source, patient_id))
        if task is not None:
            bundle["entry"].extend(_task_done(task, bundle["entry"][0]["fullUrl"], author, now))
    try:
        answer = await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Your answers were not saved", exc) from None
    logger.info("questionnaire answered (%s%s)", name, ", on a call" if on_call else "")
    if on_call:
        return _back(patient_id, "feedback-recorded")
    if not writes.created(answer):
        notice = "already-saved"
    elif name == PATIENT_FEEDBACK:
        notice = "feedback-saved-line" if _needs_crisis_line(response) else "feedback-saved"
    else:
        notice = "saved-crisis" if suicide_risk else "saved"
    query = urlencode({"notice": notice})
    return RedirectResponse(f"/patient/{quote(patient_id)}?{query}", status_code=303)


@router.get("/feedback/staff")
async def staff_form(request: Request, session: SessionDep, templates: TemplatesDep) -> Response:
    """The staff workflow survey, for the signed-in clinician."""
    _staff_author(session)
    return render(
        request,
        templates,
        "questionnaire.html",
        {
            "session": session,
            "name": STAFF_FEEDBACK,
            "q": questionnaire(STAFF_FEEDBACK),
            "form_id": uuid.uuid4().hex,
            "staff": True,
            "action": "/feedback/staff",
            "back": "/registry",
            "notice": NOTICES.get(request.query_params.get("notice") or ""),
        },
    )


def _staff_author(session: Session) -> str | None:
    """The clinician answering the staff survey (None in the demo); refused for patients."""
    require_clinician(session)
    if session.demo:
        return writes.user_reference(session.context.fhir_user, session.iss)
    author = writes.user_reference(session.context.fhir_user, session.iss)
    if author is None:
        raise Refusal(
            "Not available",
            "The EHR did not say who signed in; the staff survey is answered in your own name.",
            403,
        )
    return author


@router.post("/feedback/staff")
async def staff_submit(session: SessionDep, source: SourceDep, form: FormDep) -> Response:
    author = _staff_author(session)
    form_id = form.get("form_id", "")
    if not _FORM_ID.fullmatch(form_id):
        raise Refusal("Not saved", "The form is out of date; open it again.")
    q = questionnaire(STAFF_FEEDBACK)
    now = datetime.now(UTC).replace(microsecond=0)
    response = response_from_form(q, form, None, author, now)
    if not answered(q, response):
        raise Refusal("Not saved yet", "Please answer at least one question.")
    identifier = f"staff-entry:{STAFF_FEEDBACK}:{author or 'demo'}:{form_id}"
    response["identifier"] = {"system": BHI_IDENTIFIER, "value": identifier}
    bundle = writes.create_with_provenance(
        response, identifier, reason="staff workflow survey answered", user=author, recorded=now
    )
    try:
        answer = await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Your answers were not saved", exc) from None
    logger.info("staff workflow survey answered")
    notice = "feedback-saved" if writes.created(answer) else "already-saved"
    return RedirectResponse(f"/feedback/staff?{urlencode({'notice': notice})}", status_code=303)
