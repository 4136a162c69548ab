"""FHIR Subscription rest-hook receiver: a notification runs the sync for that patient.

Mounted by the app (``bhi-fhir serve``) under ``/fhir-notify``. What R4 servers send::

    PUT  {endpoint}/QuestionnaireResponse/{id}   body: the resource  (payload application/fhir+json)
    POST {endpoint}                               empty body           (no payload)
    POST {endpoint}                               body: the resource   (some servers)

A resource notification runs :func:`run_sync` scoped to the response's patient (all their
responses, the watermark untouched); an empty one runs the ordinary incremental sync from
the watermark. The receiver answers ``200`` at once and hands the run to the app's
:class:`~bhi_fhir.sync.queue.SyncQueue` (the server must neither wait on our writes nor
retry because we are busy): at most ``BHI_NOTIFY_CONCURRENCY`` runs at once, one in flight
plus one follow-up per patient (and for the full run), and past ``BHI_NOTIFY_QUEUE_MAX``
waiting patients one full run from the watermark instead — a notification is never lost
(see :mod:`bhi_fhir.sync.queue`). On shutdown the runs in flight get
``BHI_NOTIFY_SHUTDOWN_GRACE`` seconds; what was not done is logged as counts and is picked up
by the next full sync, since only a full run moves the watermark past a response.
``GET {endpoint}/status`` shows the queue's counts (no ids, so no authentication).

A notification we cannot read answers ``400`` with an OperationOutcome, a body over
:data:`MAX_NOTIFICATION_BYTES` ``413`` (Starlette's body limit, set on the router). The shared
secret is required: a missing or wrong ``X-BHI-Notify-Secret`` header answers ``401``, and
without ``BHI_NOTIFY_SECRET`` every notification answers ``503`` — unless
``BHI_NOTIFY_INSECURE=1`` (local testing only; a warning is logged at start-up) lets
notifications in without one.

Configuration (environment): ``BHI_NOTIFY_SERVER`` (the FHIR base URL to sync with;
required), ``BHI_NOTIFY_SECRET`` (required), ``BHI_NOTIFY_INSECURE``,
``BHI_NOTIFY_PLAN`` (practice plan file),
``BHI_NOTIFY_TAGS`` (``system|code`` meta.tags for everything written, comma-separated),
``BHI_STATE_URL`` (the operational store), ``BHI_NOTIFY_CONCURRENCY`` (default 4),
``BHI_NOTIFY_QUEUE_MAX`` (default 10000), ``BHI_NOTIFY_SHUTDOWN_GRACE`` (seconds, default
10). How the sync authenticates to the FHIR server, as the CLI's options
(:mod:`bhi_fhir.fhir.auth_factory`): ``BHI_NOTIFY_BEARER_TOKEN``, or SMART backend services
with ``BHI_NOTIFY_CLIENT_ID`` and ``BHI_NOTIFY_PRIVATE_KEY`` (a PEM or JWKS file), optionally
``BHI_NOTIFY_JWKS_URL``, ``BHI_NOTIFY_SCOPE``, ``BHI_NOTIFY_TOKEN_URL``, ``BHI_NOTIFY_KID``.
Logs carry counts and statuses, never ids.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from bhi_fhir import fhirjson
from bhi_fhir.fhir.auth_factory import AuthSettings
from bhi_fhir.settings import SETTINGS_CONFIG, AuthEnv
from bhi_fhir.sync.queue import QueueStatus, SyncQueue
from bhi_fhir.sync.runner import SyncConfig, default_plan_path, run_sync
from bhi_fhir.sync.subscription import SECRET_HEADER

__all__ = ["SECRET_HEADER", "NotifySettings", "SyncRunFailed", "get_notify_settings", "router"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_FHIR_JSON = "application/fhir+json"
# A notification is one QuestionnaireResponse (a few kB); anything larger is refused (413)
# before it is read whole.
MAX_NOTIFICATION_BYTES = 1024 * 1024
_QUEUE_ATTR = "fhir_notify_queue"  # on app.state: one queue per app and event loop


# Queue sizes: a value that cannot be used falls back to its default, with a warning.
_QUEUE_DEFAULTS = {"concurrency": (4, 1), "queue_max": (10_000, 1), "shutdown_grace": (10.0, 0)}


class NotifySettings(AuthEnv):
    """The receiver's settings, read from ``BHI_NOTIFY_*`` (and ``BHI_STATE_URL``, shared with
    the commands) by pydantic-settings: the only place they are read. The credentials are
    :class:`~bhi_fhir.settings.AuthEnv`'s, ``BHI_NOTIFY_BEARER_TOKEN`` and so on."""

    model_config = SettingsConfigDict(**{**SETTINGS_CONFIG, "env_prefix": "BHI_NOTIFY_"})

    server: str | None = None  # the FHIR base URL to sync with
    secret: str | None = None  # X-BHI-Notify-Secret
    plan_path: Path = Field(default_factory=default_plan_path,
                            validation_alias=AliasChoices("BHI_NOTIFY_PLAN"))
    # meta.tags put on everything written: "system|code, system|code"
    tags: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()
    # The operational store; None: the store's default (BHI_STATE_URL, shared with the commands
    # and the app, else SQLite in the state directory).
    state_url: str | None = None
    concurrency: int = 4  # sync runs at once
    queue_max: int = 10_000  # waiting patients before collapsing into one full run
    shutdown_grace: float = 10.0  # seconds the runs in flight get on shutdown
    insecure: bool = False  # accept notifications without a secret (local testing only)

    @classmethod
    def from_env(cls) -> NotifySettings:
        return cls()

    @property
    def auth(self) -> AuthSettings:
        """How the receiver's syncs authenticate to the FHIR server."""
        return AuthSettings(**self.credentials())

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = (item.strip().rpartition("|") for item in value.split(","))
        return tuple((system, code) for system, _, code in pairs if system and code)

    @field_validator("insecure", mode="before")
    @classmethod
    def _insecure(cls, value: object) -> object:
        return value.strip().lower() in ("1", "true", "yes") if isinstance(value, str) else value

    @field_validator("concurrency", "queue_max", "shutdown_grace", mode="wrap")
    @classmethod
    def _queue_size(cls, value: object, handler: Any, info: ValidationInfo) -> object:
        default, minimum = _QUEUE_DEFAULTS[str(info.field_name)]
        try:
            number = handler(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            name = f"BHI_NOTIFY_{str(info.field_name).upper()}"
            logger.warning("%s=%r is not a number >= %s; using %s", name, value, minimum,
                           default)
            return default
        return number

    @cached_property
    def fhir_auth(self) -> httpx.Auth | None:
        """One auth for every run, so a backend-services token is reused until it expires;
        ValueError when the credentials cannot be used."""
        if self.server is None:
            return None
        return self.auth.build(self.server)

    def config(self, patient: str | None) -> SyncConfig:
        if self.server is None:
            raise ValueError("BHI_NOTIFY_SERVER is not set")
        return SyncConfig(server=self.server, plan_path=self.plan_path, tags=self.tags,
                          state_url=self.state_url, patient=patient, auth=self.fhir_auth)


@lru_cache
def get_notify_settings() -> NotifySettings:
    return NotifySettings.from_env()


Settings = Annotated[NotifySettings, Depends(get_notify_settings)]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Merged into the app's lifespan by ``include_router``: say at start-up how notifications
    are authenticated; close the queue on shutdown."""
    settings = app.dependency_overrides.get(get_notify_settings, get_notify_settings)()
    if settings.server is not None and settings.secret is None:
        if settings.insecure:
            logger.warning(
                "BHI_NOTIFY_INSECURE is set: /fhir-notify accepts notifications WITHOUT a "
                "shared secret — anyone who can reach it can start syncs. Local testing only."
            )
        else:
            logger.warning(
                "BHI_NOTIFY_SECRET is not set: /fhir-notify refuses every notification (503)"
            )
    if settings.server is not None and settings.auth.configured:
        try:
            _ = settings.fhir_auth
        except ValueError as exc:
            logger.warning("notification syncs will fail: FHIR credentials unusable: %s", exc)
    yield
    queue = getattr(app.state, _QUEUE_ATTR, None)
    if isinstance(queue, SyncQueue):
        await queue.close()


router = APIRouter(
    tags=["fhir-notify"], lifespan=_lifespan, max_body_size=MAX_NOTIFICATION_BYTES
)


class SyncRunFailed(Exception):
    """run_sync reported ``failed`` (it does not raise): the queue counts a failed run."""


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
    elif not settings.insecure:
        return _outcome(503, "security", "notifications are refused: BHI_NOTIFY_SECRET is not "
                        "set (BHI_NOTIFY_INSECURE=1 accepts them without one, for local testing)")
    return None


class _Reference(BaseModel):
    reference: str


class _Notified(BaseModel):
    """What the receiver reads of a notified resource; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")

    resourceType: Literal["QuestionnaireResponse"]  # the FHIR element name
    id: str | None = None
    subject: _Reference | None = None


def _patient_of(body: bytes, resource_id: str | None) -> str:
    """The notified response's ``Patient/<id>``; ValueError says what is wrong.

    pydantic parses and checks the body in one step: any JSON at all (an array, a string where
    an object belongs, nesting deeper than its parser's limit) is a ValueError, never a 500.
    """
    try:
        resource = _Notified.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = error["loc"][0] if error["loc"] else None
        if error["type"].startswith("json"):
            raise ValueError("the body is not JSON") from None
        if where is None or where == "resourceType":
            raise ValueError("the notification is not a QuestionnaireResponse") from None
        if where == "id":
            raise ValueError("the resource id is not a string") from None
        raise ValueError("the QuestionnaireResponse has no Patient subject") from None
    if resource_id is not None and resource.id not in (None, resource_id):
        raise ValueError("the resource id does not match the URL")
    subject = fhirjson.reference(resource.subject.reference) if resource.subject else None
    if subject is None or not subject.startswith("Patient/"):
        raise ValueError("the QuestionnaireResponse has no Patient subject")
    return subject


async def _run(settings: NotifySettings, patient: str | None) -> None:
    """One queued run (tests replace this coroutine)."""
    report = await run_sync(settings.config(patient))
    logger.info(
        "notification sync (%s) %s: %d responses, %d written, %d errors",
        "patient" if patient else "full", report.status, report.responses,
        report.written.get("created", 0) + report.written.get("updated", 0), len(report.errors),
    )
    if report.status == "failed":
        raise SyncRunFailed(report.run_id)


def _queue(request: Request, settings: NotifySettings) -> SyncQueue:
    """The app's queue, made on first use in the running loop."""
    queue = getattr(request.app.state, _QUEUE_ATTR, None)
    if not isinstance(queue, SyncQueue) or queue.loop is not asyncio.get_running_loop():

        async def run(patient: str | None) -> None:
            await _run(settings, patient)  # looked up per call: tests replace _run

        queue = SyncQueue(run, limit=settings.concurrency, max_queued=settings.queue_max,
                          grace=settings.shutdown_grace)
        setattr(request.app.state, _QUEUE_ATTR, queue)
    return queue


async def _accept(request: Request, settings: NotifySettings, resource_id: str | None) -> Response:
    refused = _refusal(request, settings)
    if refused is not None:
        return refused
    body = await request.body()  # over MAX_NOTIFICATION_BYTES: the router answers 413
    patient: str | None = None
    if body.strip():
        try:
            patient = _patient_of(body, resource_id)
        except ValueError as exc:
            return _outcome(400, "invalid", str(exc))
    elif resource_id is not None:
        return _outcome(400, "invalid", "a PUT notification needs the resource as its body")
    queue = _queue(request, settings)
    queue.submit(patient)  # None is FULL: the incremental run
    status = queue.status()
    logger.info("notification accepted (%s): %d runs in flight, %d queued",
                "patient" if patient else "incremental", status.in_flight, status.queued)
    return Response(status_code=200)


@router.post("")
@router.post("/")
async def notify_empty(request: Request, settings: Settings) -> Response:
    """Rest-hook without payload (or a resource POSTed to the endpoint itself)."""
    return await _accept(request, settings, None)


@router.get("/status")
async def queue_status(request: Request, settings: Settings) -> JSONResponse:
    """The queue's counts (in flight, queued, completed, failed, …): no ids, no PHI."""
    queue = getattr(request.app.state, _QUEUE_ATTR, None)
    if isinstance(queue, SyncQueue):
        body = queue.status().as_json()
    else:  # no notification yet
        body = QueueStatus.empty(settings.concurrency, settings.queue_max).as_json()
    return JSONResponse({"configured": settings.server is not None, **body})


@router.put("/QuestionnaireResponse/{resource_id}")
@router.post("/QuestionnaireResponse/{resource_id}")
async def notify_resource(resource_id: str, request: Request, settings: Settings) -> Response:
    """Rest-hook with ``payload: application/fhir+json``: the resource is the body."""
    return await _accept(request, settings, resource_id)


@router.put("/{resource_type}/{resource_id}")
async def notify_other(resource_type: str, resource_id: str) -> Response:
    return _outcome(400, "not-supported", "only QuestionnaireResponse notifications are handled")
