"""The registry page, read from the store's read model (``bhi_fhir.registry``).

* ``GET /registry`` reads the stored rows of the session's FHIR server: one database read,
  whatever the number of patients. Each row says when its record was read from the EHR; the
  page says how fresh the whole registry is.
* First use (no rows stored for this server yet): the registry is built once from the EHR —
  the live read every view used to make — and stored, with a note on the page. Later views
  read the store; ``sync``, the notification receiver and the app's own writes keep it current.
* ``POST /registry/refresh/{patient}`` re-reads one patient from the EHR; ``POST
  /registry/rebuild`` the whole registry. Both carry the session's CSRF token like every
  state-changing request.
* The demo clinic lives in memory: its registry is computed live on each view (same rows).

The rows are computed by ``registry_row`` in every case — the live read and the read model
share that one computation.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bhi_fhir.fhir import FhirError
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry import build_registry, compute_rows, load_registry, refresh_patients
from bhi_fhir.registry.model import enrollment_rule_of, registry_in_use
from bhi_fhir.store import Store, StoreOpenError
from smart_app import smart
from smart_app.data import ClinicSource
from smart_app.deps import FormDep, Refusal, SessionDep, TemplatesDep, render
from smart_app.ehr_errors import ehr_refusal
from smart_app.pages import SourceDep, practice_plan, today_of
from smart_app.roles import require_clinician
from smart_app.sessions import Session

__all__ = ["page_context", "refresh_after_write", "registry_store", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

# Notices of the registry's own actions (``?notice=``); text from the URL is never shown.
NOTICES = {
    "refreshed": "the patient's row was read again from the EHR",
    "removed": "the patient is no longer enrolled and left the registry",
    "rebuilt": "the registry was read again from the EHR",
}
# Rows of the caseload table per page: a page of 1,000 rows takes longer to render than to read
# from the store. Sorting, filtering, the review list and the agenda cover every row.
PAGE_ROWS = 100
_PATIENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR id (R4 datatypes: id)


def registry_store(request: Request) -> Store | None:
    """The operational store holding the read model (``$BHI_STATE_URL``, else the default
    state file), opened once per app; None in the demo (its clinic lives in memory)."""
    if request.app.state.settings.demo:
        return None
    store: Store | None = getattr(request.app.state, "registry_store", None)
    if store is None:
        try:
            store = Store.open()
        except StoreOpenError as exc:
            raise Refusal("The registry is not available", str(exc), 503) from None
        request.app.state.registry_store = store
    return store


def _allowed(session: Session) -> None:
    require_clinician(session)  # never a patient-facing user (smart_app.roles)
    if not session.demo and session.token and smart.patient_level_only(session.token.scope):
        raise Refusal(
            "Registry not available for this launch",
            "The registry lists many patients; this launch was authorized for one patient "
            "only (patient-level scopes).",
            403,
        )


async def _live_rows(
    source: ClinicSource, today: date, plan: PracticePlan | None
) -> list[dict[str, Any]]:
    enrolled = await source.enrolled_patients(enrollment_rule_of(plan))
    return list(compute_rows(await source.patients_resources(enrolled), today, plan).values())


def _sorted(rows: list[dict[str, Any]], flag: str | None, sort: str) -> list[dict[str, Any]]:
    if flag:
        rows = [r for r in rows if flag in r["flags"]]
    keys = {
        "flags": lambda r: (-len(r["flags"]), "crisis" not in r["flags"], r["name"]),
        "name": lambda r: (r["name"],),
        "phq9": lambda r: (-(r["phq9"] if r["phq9"] is not None else -1),),
        "change": lambda r: (r["change"] if r["change"] is not None else 1e9,),
        "weeks": lambda r: (-(r["weeks"] or 0),),
        "contact": lambda r: (str(r["last_contact"] or ""),),
    }
    return sorted(rows, key=keys.get(sort, keys["flags"]))


@router.get("/registry")
async def registry_page(
    request: Request,
    session: SessionDep,
    source: SourceDep,
    templates: TemplatesDep,
    flag: str | None = None,
    sort: str = "flags",
    notice: str | None = None,
    page: int = 1,
) -> Response:
    _allowed(session)
    today = today_of(request)
    plan = practice_plan(request)
    store = registry_store(request)
    freshness: dict[str, Any] = {"mode": "live"}
    try:
        if store is None:
            rows = await _live_rows(source, today, plan)
        else:
            assert session.iss is not None
            registry = load_registry(store, session.iss, today)
            if not registry.rows and registry.built_at is None:
                # First use: build the read model once (the live read) and store it.
                await build_registry(store, session.iss, source.patients_resources,
                                     today=today, plan=plan, enrolled=source.enrolled_patients)
                registry = load_registry(store, session.iss, today)
                freshness["first_build"] = True
            rows = registry.rows
            freshness.update(
                mode="store",
                built_at=registry.built_at,
                oldest=registry.oldest_read.isoformat(timespec="seconds")
                if registry.oldest_read else None,
                newest=registry.newest_read.isoformat(timespec="seconds")
                if registry.newest_read else None,
                earlier_day=registry.earlier_day,
            )
    except FhirError as exc:
        raise ehr_refusal("Could not load the registry", exc) from None
    return render(
        request,
        templates,
        "registry.html",
        {
            "session": session,
            **page_context(rows, flag, sort, page),
            "today": today.isoformat(),
            "fhir_requests": source.request_count,
            "freshness": freshness,
            "notice": NOTICES.get(notice or ""),
        },
    )


def page_context(
    rows: list[dict[str, Any]], flag: str | None, sort: str, page: int
) -> dict[str, Any]:
    """What registry.html shows of the rows: filtered and sorted, the caseload table's page,
    the review list and the agenda (of every row)."""
    rows = _sorted(rows, flag, sort)
    caseload = [r for r in rows if not r["status"]]
    pages = max(1, -(-len(caseload) // PAGE_ROWS))
    page = min(max(1, page), pages)
    return {
        "rows": rows,
        "table_rows": caseload[(page - 1) * PAGE_ROWS : page * PAGE_ROWS],
        "page": page,
        "pages": pages,
        "review": [r for r in rows if r["review"]],
        "agenda": [r for r in rows if r["flags"]],
        "flag": flag or "",
        "sort": sort,
    }


def _back(notice: str) -> Response:
    return RedirectResponse(f"/registry?{urlencode({'notice': notice})}", status_code=303)


@router.post("/registry/refresh/{patient_id}")
async def refresh_patient(
    request: Request, patient_id: str, session: SessionDep, source: SourceDep, form: FormDep
) -> Response:
    """Read one patient again from the EHR and store the row (or drop it if not enrolled)."""
    _allowed(session)
    if not _PATIENT_ID.fullmatch(patient_id):
        raise Refusal("Not refreshed", "That is not a patient id.")
    store = registry_store(request)
    if store is None:  # the demo's registry is always computed live
        return _back("refreshed")
    assert session.iss is not None
    try:
        rows = await refresh_patients(store, session.iss, source.patients_resources,
                                      [patient_id], today=today_of(request),
                                      plan=practice_plan(request), source="refresh")
    except FhirError as exc:
        raise ehr_refusal("Not refreshed", exc) from None
    return _back("refreshed" if rows.get(patient_id) is not None else "removed")


@router.post("/registry/rebuild")
async def rebuild(
    request: Request, session: SessionDep, source: SourceDep, form: FormDep
) -> Response:
    """Read the whole registry again from the EHR (the live read, once)."""
    _allowed(session)
    store = registry_store(request)
    if store is not None:
        assert session.iss is not None
        try:
            await build_registry(store, session.iss, source.patients_resources,
                                 today=today_of(request), plan=practice_plan(request),
                                 enrolled=source.enrolled_patients)
        except FhirError as exc:
            raise ehr_refusal("The registry was not read again", exc) from None
    return _back("rebuilt")


async def refresh_after_write(
    request: Request, session: Session, source: ClinicSource, patient_id: str
) -> None:
    """After one of the app's own writes: the patient's registry row read again, so the
    registry is consistent with the write right away. A failure leaves the older row (its
    time shown on the page) and never fails the write, which has already succeeded."""
    try:
        store = registry_store(request)
    except Refusal:
        logger.warning("registry row not refreshed after a write (no store)")
        return
    if store is None or session.iss is None or not registry_in_use(store, session.iss):
        return  # no read model yet: its first build reads the patient anyway
    try:
        await refresh_patients(store, session.iss, source.patients_resources, [patient_id],
                               today=today_of(request), plan=practice_plan(request),
                               source="app")
    except FhirError as exc:
        logger.warning("registry row not refreshed after a write (%s)", type(exc).__name__)
