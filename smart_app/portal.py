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
from smart_app import writes
from smart_app.data import ClinicSource
from smart_app.deps import FormDep, Refusal, SessionDep, TemplatesDep, render
from smart_app.ehr_errors import ehr_refusal
from smart_app.roles import own_patient, role_of, user_type
from smart_app.sessions import Session
from smart_app.views import SourceDep, _load, practice_plan, readable_view, today_of
from smart_app.views_model import patient_view

logger = logging.getLogger(__name__)

router = APIRouter()

QUESTIONNAIRES = ("phq9", "gad7")  # the screens the registry tracks over time
_FORM_ID = re.compile(r"[0-9a-f]{32}")

NOTICES = {
    "saved": "Thank you: your answers were saved and your care team will see them.",
    "already-saved": "These answers were already saved.",
    "saved-crisis": "Thank you: your answers were saved and your care team will see them.",
}


@lru_cache
def questionnaire(name: str) -> dict[str, Any]:
    """A bundled screening Questionnaire (profiles/questionnaires/<name>.json)."""
    if name not in QUESTIONNAIRES:
        raise KeyError(name)
    data: dict[str, Any] = json.loads(
        (profiles_dir() / "questionnaires" / f"{name}.json").read_text(encoding="utf-8")
    )
    return data


def check_own_patient(session: Session, patient_id: str) -> None:
    """A patient-facing user opens their own record only."""
    if patient_id != own_patient(session):
        logger.warning("refused: a patient-facing user asked for another record")
        raise Refusal("Not allowed", "You can open your own record only.", 403)


def _require_patient(session: Session, patient_id: str) -> None:
    if not role_of(session).patient_facing:
        raise Refusal(
            "Not available", "The questionnaires are filled in by the patient.", 403
        )
    check_own_patient(session, patient_id)


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
            "questionnaires": [(n, questionnaire(n).get("title", n)) for n in QUESTIONNAIRES],
            "notice": NOTICES.get(notice or ""),
            "crisis_line": _crisis_line(request) if notice == "saved-crisis" else None,
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
    _require_patient(session, patient_id)
    if name not in QUESTIONNAIRES:
        raise Refusal("No such questionnaire", "Choose a questionnaire from your page.", 404)
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
        },
    )


def response_from_form(
    q: dict[str, Any], form: dict[str, str], patient_id: str, author: str | None, now: datetime
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
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": now.isoformat(timespec="seconds"),
        "item": items,
    }
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
    _require_patient(session, patient_id)
    if name not in QUESTIONNAIRES:
        raise Refusal("No such questionnaire", "Choose a questionnaire from your page.", 404)
    form_id = form.get("form_id", "")
    if not _FORM_ID.fullmatch(form_id):
        raise Refusal("Not saved", "The form is out of date; open it again.")
    q = questionnaire(name)
    now = datetime.now(UTC).replace(microsecond=0)
    author = writes.user_reference(session.context.fhir_user, session.iss)
    response = response_from_form(q, form, patient_id, author, now)
    score = score_response(response, questionnaire=q)  # the one scorer
    if not score.complete:
        raise Refusal(
            "Not saved yet",
            "Please answer every question marked as required, then send the form again.",
        )
    identifier = f"patient-entry:{name}:{patient_id}:{form_id}"
    response["identifier"] = {"system": BHI_IDENTIFIER, "value": identifier}
    bundle = writes.create_with_provenance(
        response,
        identifier,
        reason="questionnaire answered by the patient",
        user=author,
        recorded=now,
    )
    try:
        answer = await source.transaction(bundle)
    except FhirError as exc:
        raise ehr_refusal("Your answers were not saved", exc) from None
    logger.info("questionnaire answered by the patient (%s)", name)
    if not writes.created(answer):
        notice = "already-saved"
    else:
        notice = "saved-crisis" if score.suicide_risk else "saved"
    query = urlencode({"notice": notice})
    return RedirectResponse(f"/patient/{quote(patient_id)}?{query}", status_code=303)
