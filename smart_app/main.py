"""The app factory: ``create_app(settings)``."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from bhi_fhir.logs import quiet_url_loggers
from bhi_fhir.sync import webhook
from smart_app import cds, dashboard, jwks, launch, pages, portal, registry, views
from smart_app.config import Settings, get_settings
from smart_app.deps import Refusal, render, set_session_cookie
from smart_app.sessions import new_session, store_for
from smart_app.tokens import SessionEnded, ended_session_page

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent

# Scripts and styles only from the app itself (the chart library is vendored); no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)


def content_security_policy(request: Request) -> str:
    """The CSP with ``frame-ancestors`` of the EHR this request belongs to (clickjacking).

    The route names the EHR in ``request.state.ehr_iss`` (the launch's ``iss``, or the signed-in
    session's); its registration lists the origins that may frame the app. Any other response
    (no EHR known, demo, refusals before a launch) may be framed only by the app itself.
    """
    ancestors: tuple[str, ...] = ("'self'",)
    iss = getattr(request.state, "ehr_iss", None)
    if isinstance(iss, str):
        registration = request.app.state.settings.registration_for(iss)
        if registration is not None:
            ancestors = registration.frame_ancestors
    return f"{_CSP}; frame-ancestors {' '.join(ancestors)}"


def add_security_headers(request: Request, response: Response) -> None:
    """The headers every response carries (pages, refusals, 404s, the 500 page)."""
    response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.url.path.startswith("/static"):
        response.headers.setdefault("Cache-Control", "no-store")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    quiet_url_loggers()  # their URLs carry patient ids and the OAuth code and state
    app = FastAPI(title="bhi-fhir SMART app", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.practice_plan = pages.load_plan(settings)  # a bad plan stops here, not per page
    app.state.store = store_for(
        settings.session_db_url,
        settings.session_ttl_seconds,
        settings.pending_launch_ttl_seconds,
        settings.max_prelogin_sessions,
    )
    # Jinja2Templates autoescapes .html templates.
    app.state.templates = Jinja2Templates(directory=str(_HERE / "templates"))
    if settings.demo:
        from smart_app.demo import demo_source

        app.state.demo_source = demo_source(settings)

    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.include_router(views.router)
    app.include_router(registry.router)  # the registry page, read from the store
    app.include_router(dashboard.router)  # the practice dashboard (program metrics)
    app.include_router(portal.router)  # the patient-facing questionnaires
    if not settings.demo:
        # The demo is sealed: no EHR launch and no notification receiver (it would sync the
        # FHIR server named by BHI_NOTIFY_SERVER), so nothing in it reaches the network.
        app.include_router(launch.router)
        app.include_router(jwks.router)  # the public keys of private_key_jwt registrations
        cds.install(app)  # CDS Hooks 2.0 and its CORS (smart_app/cds.py)
        # FHIR Subscription rest-hook receiver: a notification runs the sync.
        app.include_router(webhook.router, prefix="/fhir-notify")

    @app.exception_handler(Refusal)
    async def refusal_page(request: Request, exc: Refusal) -> Response:
        return render(
            request,
            request.app.state.templates,
            "refusal.html",
            {
                "title": exc.title,
                "message": str(exc),
                "error": exc.error,
                "error_description": exc.error_description,
            },
            status_code=exc.status,
        )

    @app.exception_handler(SessionEnded)
    async def session_ended_page(request: Request, exc: SessionEnded) -> Response:
        return ended_session_page(request, exc)

    @app.exception_handler(Exception)
    async def server_error_page(request: Request, exc: Exception) -> Response:
        """Any unhandled error: the app's own page (no exception text: it may quote a record).

        Starlette runs this handler outermost (ServerErrorMiddleware), outside the headers
        middleware below, so the page gets the security headers here.
        """
        route = getattr(request.scope.get("route"), "path", "?")  # the template: no ids
        logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, route)
        response = render(
            request,
            request.app.state.templates,
            "refusal.html",
            {
                "title": "Something went wrong",
                "message": "The app could not show this page. Try again, or ask your "
                "administrator if it keeps happening.",
            },
            status_code=500,
        )
        add_security_headers(request, response)
        return response

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        add_security_headers(request, response)
        return response

    if settings.demo:

        @app.get("/demo")
        async def demo_start(request: Request) -> Response:
            """Sign in to the demo clinic (no EHR): a session with ``demo`` set."""
            from fastapi.responses import RedirectResponse

            session = new_session()
            session.demo = True
            app.state.store.save(session)
            response = RedirectResponse("/registry", status_code=303)
            set_session_cookie(response, session, settings)
            return response

    return app
