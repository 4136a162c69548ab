"""CDS Hooks 2.0 service: bhi-fhir's protocol as cards in the EHR's patient view.

Specification: https://cds-hooks.hl7.org/2.0/ (discovery, the hook request, cards, feedback,
security). One service for ``patient-view`` (and the same for ``encounter-start``):

* ``GET /cds-services`` — discovery: the service, its prefetch templates (the searches the
  patient view reads, ``bhi_fhir.registry.reader.PATIENT_SEARCHES``, so a prefetched record and a
  fetched one are the same record).
* ``POST /cds-services/bhi-fhir-patient-view`` — cards computed by the workflow engine's own
  ``apply`` for this one patient (the same rules, the same Task/ServiceRequest resources with the
  same business identifiers): a suggestion is the planned write itself, so once the EHR has
  created it the next call sees it (``existing``) and no longer suggests it. Suggestion uuids
  are derived from those identifiers, so the same suggestion keeps its uuid across calls.
  Plus a billing card when this month's counted minutes are close to the next code's
  threshold (``smart_app.cds_cards.billing_card``).
* ``POST /cds-services/bhi-fhir-patient-view/feedback`` — accepted, counted, not stored.

CORS on ``/cds-services`` only (:class:`ScopedCors`).

The EHR authenticates with a JWT bearer (spec "Trusting CDS Clients"): signed with a key of
the JWKS registered for its issuer (``Settings.cds_clients``: issuer → JWKS URL, the allow-list),
``aud`` this service's URL, ``sub``, ``exp``, ``iat`` and a ``jti`` not seen before by any
process of the app (``smart_app.cds_replay``: the operational store).
Anything else: 401.
A record not prefetched is read from ``fhirServer`` with ``fhirAuthorization.access_token``
only when that server is one of the app's SMART registrations (the token goes nowhere else).
Logs carry counts and reasons only, never patient ids or record content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import jwt
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bhi_fhir.fhir import FhirError
from bhi_fhir.fhirjson import patient_of
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry.reader import PATIENT_SEARCHES, SEARCH_FILTERS
from bhi_fhir.registry.rows import timeline_of
from smart_app.cds_cards import billing_card, cards_for
from smart_app.cds_replay import ReplayGuard
from smart_app.data import FhirSource
from smart_app.deps import Refusal
from smart_app.idtoken import ALGORITHMS, LEEWAY, IdTokenError, _key_for
from smart_app.registry import registry_store
from smart_app.views import practice_plan, today_of

logger = logging.getLogger(__name__)

router = APIRouter()

PREFIX = "/cds-services"


class ScopedCors:
    """CORS on the CDS Hooks endpoints only (spec "Cross-Origin Resource Sharing": CDS
    Services and browser-based CDS Clients need it): any origin, no cookies (the EHR's JWT in
    ``Authorization`` is the trust), GET/POST and the preflight. The app's pages keep
    same-origin only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=["*"], allow_credentials=False,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        target = self.cors if path == PREFIX or path.startswith(PREFIX + "/") else self.app
        await target(scope, receive, send)


def install(app: FastAPI) -> None:
    """The CDS Hooks routes and their CORS."""
    app.include_router(router)
    app.add_middleware(ScopedCors)

SPEC = "https://cds-hooks.hl7.org/2.0/"
SERVICE_ID = "bhi-fhir-patient-view"
ENCOUNTER_SERVICE_ID = "bhi-fhir-encounter-start"
_PATIENT = "{{context.patientId}}"


def _template(kind: str, param: str) -> str:
    filters = "".join(f"&{k}={v}" for k, v in SEARCH_FILTERS.get(kind, {}).items())
    return f"{kind}?{param}=Patient/{_PATIENT}&_count=1000{filters}"


# Prefetch key → template: the Patient and each search the patient view reads.
PREFETCH: dict[str, str] = {"patient": f"Patient/{_PATIENT}"} | {
    kind[0].lower() + kind[1:]: _template(kind, param) for kind, param in PATIENT_SEARCHES
}

_DESCRIPTION = (
    "Crisis risk without a completed safety assessment, positive screens not yet engaged, "
    "enrolled patients not improving, and overdue care-manager contact, with the Tasks and "
    "ServiceRequests bhi-fhir's protocol would create."
)
_USAGE = (
    "Register the EHR's JWT issuer and JWKS URL (BHI_APP_CDS_CLIENTS) and, for fetching what "
    "is not prefetched, the FHIR server as a SMART registration."
)
# Service id → its hook. encounter-start (a visit begins) gets the same cards as patient-view:
# both carry context.patientId, the only context the cards read.
HOOKS = {SERVICE_ID: "patient-view", ENCOUNTER_SERVICE_ID: "encounter-start"}
SERVICES = [
    {"hook": hook, "id": service_id, "title": f"bhi-fhir behavioral health ({hook})",
     "description": _DESCRIPTION, "prefetch": PREFETCH, "usageRequirements": _USAGE}
    for service_id, hook in HOOKS.items()
]


class CdsError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# --------------------------------------------------------------------------- security


async def verify_client_jwt(request: Request, http: httpx.AsyncClient) -> dict[str, Any]:
    """The claims of the EHR's bearer JWT; :class:`CdsError` 401 when it cannot be trusted."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise CdsError(401, "a JWT bearer token is required")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise CdsError(401, "the bearer token is not a JWT") from None
    issuer = unverified.get("iss")
    clients = request.app.state.settings.cds_clients
    jwks_url = clients.get(issuer) if isinstance(issuer, str) else None
    if jwks_url is None:
        raise CdsError(401, "the token's issuer is not an allowed CDS client")
    if alg not in ALGORITHMS:
        raise CdsError(401, f"tokens signed with {alg!s} are not accepted")
    try:
        key = await _key_for(http, jwks_url, jwt.get_unverified_header(token).get("kid"))
    except IdTokenError:
        raise CdsError(401, "the token's key is not in the issuer's key set") from None
    audience = request.app.state.settings.base_url.rstrip("/") + request.url.path
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[alg], audience=audience, issuer=issuer, leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise CdsError(401, f"the bearer token is not valid ({type(exc).__name__})") from None
    guard = _replay_guard(request)
    first = await anyio.to_thread.run_sync(
        guard.claim, str(issuer), str(claims["jti"]), float(claims["exp"]) + LEEWAY, time.time()
    )
    if not first:
        raise CdsError(401, "the bearer token was already used (jti)")
    return claims


def _replay_guard(request: Request) -> ReplayGuard:
    """The jti claims in the operational store the registry uses (one per app)."""
    guard: ReplayGuard | None = getattr(request.app.state, "cds_replay_guard", None)
    if guard is None:
        try:
            store = registry_store(request)
        except Refusal:
            raise CdsError(503, "the operational store is not available") from None
        if store is None:  # the demo: no CDS routes
            raise CdsError(503, "the operational store is not available")
        guard = request.app.state.cds_replay_guard = ReplayGuard(store)
    return guard


# --------------------------------------------------------------------------- the record


def _prefetched(prefetch: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The Patient first, then every prefetched resource; None if any template is missing
    (a key absent, or the Patient null): then the record is read from the server."""
    patient = prefetch.get("patient")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return None
    if any(key not in prefetch for key in PREFETCH):
        return None
    resources = [patient]
    for key in PREFETCH:
        if key == "patient" or prefetch[key] is None:  # null: the client found nothing
            continue
        bundle = prefetch[key]
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise CdsError(400, f"prefetch {key} is not a Bundle")
        resources += [  # only the patient's own, as the reader keeps them
            e["resource"] for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            and patient_of(e["resource"]) == f"Patient/{patient.get('id')}"
        ]
    return resources


async def _record(request: Request, body: Mapping[str, Any], patient_id: str) -> tuple[
    list[dict[str, Any]], FhirSource | None
]:
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    found = _prefetched(prefetch or {})
    if found is not None and found[0].get("id") != patient_id:
        raise CdsError(400, "the prefetched Patient is not context.patientId")
    server = body.get("fhirServer")
    auth = body.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    settings = request.app.state.settings
    source = None
    known = isinstance(server, str) and settings.registration_for(server) is not None
    if known and isinstance(token, str) and token:
        source = FhirSource(str(server).rstrip("/"), token, settings.http_timeout)
    if found is not None:
        return found, source
    if server is not None and not known:
        raise CdsError(412, "fhirServer is not a FHIR server this app is registered with")
    if source is None:
        # Spec "Prefetch": without the data and without a way to fetch it, 412.
        raise CdsError(412, "the record was not prefetched and no fhirServer with "
                            "fhirAuthorization was given to fetch it")
    try:
        return await source.patient_resources(patient_id), source
    except FhirError as exc:
        await source.aclose()  # the caller never sees this source
        logger.warning("CDS Hooks: reading the record failed (%s)", type(exc).__name__)
        raise CdsError(412, "the record could not be read from fhirServer") from None


# --------------------------------------------------------------------------- routes


@router.get("/cds-services")
async def discovery() -> Response:
    return JSONResponse({"services": SERVICES})


@router.post("/cds-services/{service_id}")
async def call_service(request: Request, service_id: str) -> Response:
    hook = HOOKS.get(service_id)
    if hook is None:
        return _error(404, "no such CDS service")
    started = time.perf_counter()
    source: FhirSource | None = None
    try:
        async with httpx.AsyncClient(timeout=request.app.state.settings.http_timeout) as http:
            await verify_client_jwt(request, http)
        try:
            body = await request.json()
        except ValueError:
            raise CdsError(400, "the request body is not JSON") from None
        if not isinstance(body, dict) or body.get("hook") != hook:
            raise CdsError(400, f"this service answers the {hook} hook")
        context = body.get("context")
        patient_id = context.get("patientId") if isinstance(context, dict) else None
        if not isinstance(patient_id, str) or not patient_id or not isinstance(
            body.get("hookInstance"), str
        ):
            raise CdsError(400, "hookInstance and context.patientId are required")
        plan = practice_plan(request)
        if plan is None:
            raise CdsError(500, "the app has no practice plan configured")
        resources, source = await _record(request, body, patient_id)
        cards = await _cards(request, resources, plan, source)
    except CdsError as exc:
        logger.info("CDS Hooks %s refused: %s", service_id, exc)
        return _error(exc.status, str(exc))
    finally:
        if source is not None:
            await source.aclose()
    logger.info("CDS Hooks %s: %d cards in %.0f ms", service_id, len(cards),
                (time.perf_counter() - started) * 1000)
    return JSONResponse({"cards": cards})


async def _cards(request: Request, resources: list[dict[str, Any]], plan: PracticePlan,
                 source: FhirSource | None) -> list[dict[str, Any]]:
    from bhi_fhir.workflow import apply, count_caseloads
    from bhi_fhir.workflow.protocol import default_protocol

    protocol = default_protocol()
    timeline = timeline_of(resources, today_of(request), plan)
    # As the app's plan page: caseloads counted only when they pick the care manager.
    caseloads: dict[str, int] | None = None
    managers = {m.reference for m in plan.team.care_managers}
    current = timeline.facts.get("enrollment", {}).get("contributors") or []
    if source is not None and len(managers) > 1 and not managers & set(current):
        try:
            caseloads = count_caseloads(await source.active_bhi_careplans(), plan)
        except FhirError as exc:
            logger.warning("CDS Hooks: caseloads not counted (%s)", type(exc).__name__)
    result = apply(protocol, timeline, plan, caseloads=caseloads)
    titles = {a.id: a.title for a in protocol.actions}
    base = request.app.state.settings.base_url.rstrip("/")
    app_url = f"{base}/launch"
    cards = cards_for(
        result, timeline.facts, plan, titles=titles,
        protocol_url=protocol.plandefinitions[0] if protocol.plandefinitions else base,
        app_url=app_url,
    )
    billing = billing_card(resources, today_of(request), plan, app_url=app_url)
    return cards if billing is None else [*cards, billing]


@router.post("/cds-services/{service_id}/feedback")
async def feedback(request: Request, service_id: str) -> Response:
    if service_id not in HOOKS:
        return _error(404, "no such CDS service")
    try:
        async with httpx.AsyncClient(timeout=request.app.state.settings.http_timeout) as http:
            await verify_client_jwt(request, http)
        body = await request.json()
    except CdsError as exc:
        return _error(exc.status, str(exc))
    except ValueError:
        return _error(400, "the request body is not JSON")
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return _error(400, "feedback must be a list")
    outcomes: dict[str, int] = {}
    for item in items:
        outcome = item.get("outcome") if isinstance(item, dict) else None
        key = outcome if outcome in ("accepted", "overridden") else "other"
        outcomes[key] = outcomes.get(key, 0) + 1
    logger.info("CDS Hooks %s feedback: %s", service_id, outcomes)  # counts only
    return Response(status_code=200)  # the spec asks for 200 and no body
