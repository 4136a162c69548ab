"""What the app's pages share: the data source of a session (token kept fresh, smart_app.tokens),
the practice plan and "today", patient access, notices, and the way back to the patient page.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from bhi_fhir.fhir import FhirError
from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from smart_app import smart
from smart_app.config import Settings
from smart_app.data import ClinicSource, FhirSource
from smart_app.deps import (
    Refusal,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from smart_app.ehr_errors import ehr_refusal
from smart_app.sessions import Session
from smart_app.tokens import SessionAuth, TokenKeeper

logger = logging.getLogger(__name__)

# The one router of the patient pages: views, plan_views and record_views add their routes to it.
router = APIRouter()


T = TypeVar("T")


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
    "feedback-recorded": "patient experience survey recorded",
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


def load_plan(settings: Settings) -> PracticePlan | None:
    """The practice plan the app runs with, read once at start-up so that a plan that cannot
    be used stops ``serve`` (PracticePlanError) instead of failing the first clinician's page:
    ``settings.practice_plan``, else the bundled example plan when present."""
    path: Path | None = settings.practice_plan
    if path is None:
        from bhi_fhir.paths import examples_dir

        candidate = examples_dir() / "practice-plan.toml"
        path = candidate if candidate.is_file() else None
    return load_practice_plan(path) if path is not None else None


def practice_plan(request: Request) -> PracticePlan | None:
    """The plan loaded when the app was created (:func:`load_plan`)."""
    plan: PracticePlan | None = request.app.state.practice_plan
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


def _back(patient_id: str, notice: str, count: int | None = None) -> Response:
    """Back to the patient page with a notice of the catalogue (``NOTICES``)."""
    from urllib.parse import quote, urlencode

    query = urlencode({"notice": notice} | ({"count": count} if count is not None else {}))
    return RedirectResponse(f"/patient/{quote(patient_id)}?{query}", status_code=303)


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
