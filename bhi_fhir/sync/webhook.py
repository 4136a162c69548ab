"""FHIR Subscription rest-hook receiver: a notification runs the sync for that patient.

Mounted by the app (``bhi-fhir serve``) under ``/fhir-notify``. What R4 servers send::

    PUT  {endpoint}/QuestionnaireResponse/{id}   body: the resource  (payload application/fhir+json)
    POST {endpoint}                               empty body           (no payload)
    POST {endpoint}                               body: the resource   (some servers)

A resource notification runs :func:`run_sync` scoped to the response's patient (all their
responses, the watermark untouched); an empty one runs the ordinary incremental sync from
the watermark. Both run in a background task after the ``200`` — the server's delivery must
not wait on our writes. A notification we cannot read answers ``400`` with an
OperationOutcome; with a shared secret configured, a missing or wrong
``X-BHI-Notify-Secret`` header answers ``401``.

Configuration (environment): ``BHI_NOTIFY_SERVER`` (the FHIR base URL to sync with;
required), ``BHI_NOTIFY_SECRET``, ``BHI_NOTIFY_PLAN`` (practice plan file),
``BHI_NOTIFY_TAGS`` (``system|code`` meta.tags for everything written, comma-separated),
``BHI_STATE_URL`` (the operational store). Logs carry counts and statuses, never ids.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import JSONResponse, Response

from bhi_fhir.sync.runner import SyncConfig, default_plan_path, run_sync
from bhi_fhir.sync.subscription import SECRET_HEADER

__all__ = ["SECRET_HEADER", "NotifySettings", "get_notify_settings", "router"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class NotifySettings:
    server: str | None = None
    secret: str | None = None
    plan_path: Path = field(default_factory=default_plan_path)
    tags: tuple[tuple[str, str], ...] = ()
    state_url: str | None = None

    @classmethod
    def from_env(cls) -> NotifySettings:
        tags = []
        for item in filter(None, os.environ.get("BHI_NOTIFY_TAGS", "").split(",")):
            system, _, code = item.strip().rpartition("|")
            if system and code:
                tags.append((system, code))
        plan = os.environ.get("BHI_NOTIFY_PLAN")
        return cls(
            server=os.environ.get("BHI_NOTIFY_SERVER") or None,
            secret=os.environ.get("BHI_NOTIFY_SECRET") or None,
            plan_path=Path(plan) if plan else default_plan_path(),
            tags=tuple(tags),
            state_url=os.environ.get("BHI_STATE_URL") or None,
        )

    def config(self, patient: str | None) -> SyncConfig:
        if self.server is None:
            raise ValueError("BHI_NOTIFY_SERVER is not set")
        return SyncConfig(server=self.server, plan_path=self.plan_path, tags=self.tags,
                          state_url=self.state_url, patient=patient)


@lru_cache
def get_notify_settings() -> NotifySettings:
    return NotifySettings.from_env()


Settings = Annotated[NotifySettings, Depends(get_notify_settings)]
router = APIRouter(tags=["fhir-notify"])


def _outcome(status: int, code: str, message: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }
    return JSONResponse(body, status_code=status, media_type=_FHIR_JSON)


def _refusal(request: Request, settings: NotifySettings) -> JSONResponse | None:
    if settings.server is None:
        return _outcome(503, "not-supported", "notifications are not configured "
                        "(BHI_NOTIFY_SERVER is not set)")
    if settings.secret is not None:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), settings.secret.encode()):
            return _outcome(401, "security", f"missing or wrong {SECRET_HEADER}")
    return None


def _patient_of(resource: Any, resource_id: str | None) -> str:
    """The notified response's ``Patient/<id>``; ValueError says what is wrong."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise ValueError("the notification is not a QuestionnaireResponse")
    if resource_id is not None and resource.get("id") not in (None, resource_id):
        raise ValueError("the resource id does not match the URL")
    subject = (resource.get("subject") or {}).get("reference")
    if not isinstance(subject, str) or not subject.startswith("Patient/") or subject == "Patient/":
        raise ValueError("the QuestionnaireResponse has no Patient subject")
    return subject


async def _run(settings: NotifySettings, patient: str | None) -> None:
    report = await run_sync(settings.config(patient))
    logger.info(
        "notification sync %s: %d responses, %d written, %d errors",
        report.status, report.responses, report.written.get("created", 0)
        + report.written.get("updated", 0), len(report.errors),
    )


async def _accept(
    request: Request, settings: NotifySettings, tasks: BackgroundTasks, resource_id: str | None
) -> Response:
    refused = _refusal(request, settings)
    if refused is not None:
        return refused
    body = await request.body()
    patient: str | None = None
    if body.strip():
        try:
            resource = json.loads(body)
            patient = _patient_of(resource, resource_id)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            message = "the body is not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            return _outcome(400, "invalid", message)
    elif resource_id is not None:
        return _outcome(400, "invalid", "a PUT notification needs the resource as its body")
    tasks.add_task(_run, settings, patient)
    logger.info("notification accepted (%s)", "patient" if patient else "incremental")
    return Response(status_code=200)


@router.post("")
@router.post("/")
async def notify_empty(request: Request, settings: Settings, tasks: BackgroundTasks) -> Response:
    """Rest-hook without payload (or a resource POSTed to the endpoint itself)."""
    return await _accept(request, settings, tasks, None)


@router.put("/QuestionnaireResponse/{resource_id}")
@router.post("/QuestionnaireResponse/{resource_id}")
async def notify_resource(
    resource_id: str, request: Request, settings: Settings, tasks: BackgroundTasks
) -> Response:
    """Rest-hook with ``payload: application/fhir+json``: the resource is the body."""
    return await _accept(request, settings, tasks, resource_id)


@router.put("/{resource_type}/{resource_id}")
async def notify_other(resource_type: str, resource_id: str) -> Response:
    return _outcome(400, "not-supported", "only QuestionnaireResponse notifications are handled")
