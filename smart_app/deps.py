"""Request-scoped pieces: settings, the session behind the cookie, pages, CSRF, refusals."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from smart_app.config import EhrRegistration, Settings
from smart_app.sessions import Session, SessionStore, new_session


class Refusal(Exception):
    """Rendered as a clear page (refusal.html) with ``status``; ``error`` and
    ``error_description`` are the authorization server's own words, shown (escaped) as sent."""

    def __init__(
        self,
        title: str,
        message: str,
        status: int = 400,
        *,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.title = title
        self.status = status
        self.error = error
        self.error_description = error_description


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.store
    return store


def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[SessionStore, Depends(get_store)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def session_from_cookie(request: Request) -> Session | None:
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(settings.cookie_name)
    if not cookie:
        return None
    store: SessionStore = request.app.state.store
    return store.get(cookie)


def set_session_cookie(response: Response, session: Session, settings: Settings) -> None:
    """The opaque id only; HttpOnly; SameSite=None + Secure so it works in an EHR iframe.

    Browsers drop ``SameSite=None`` cookies without ``Secure``; with ``cookie_secure`` off (plain
    http on 127.0.0.1, tests only) the cookie is ``SameSite=Lax``, which still comes back on the
    top-level redirect to /callback.
    """
    response.set_cookie(
        settings.cookie_name,
        session.id,
        # a launch on its way lives as long as the store keeps it (sessions.py)
        max_age=settings.session_ttl_seconds
        if session.authorized
        else settings.pending_launch_ttl_seconds,
        path="/",
        httponly=True,
        secure=settings.cookie_secure,
        samesite="none" if settings.cookie_secure else "lax",
    )


def fresh_session(request: Request) -> Session:
    """The session behind the cookie, or a new one (the caller saves it and sets the cookie)."""
    return session_from_cookie(request) or new_session()


def require_session(request: Request) -> Session:
    session = session_from_cookie(request)
    if session is None or not session.authorized:
        raise Refusal(
            "Not signed in",
            "Launch the app from your EHR (or open /launch for a standalone launch).",
            401,
        )
    if request.app.state.settings.demo and not session.demo:
        # The demo serves the in-memory clinic only: a session holding an EHR token is never
        # served from its ``iss`` here.
        raise Refusal("Not a demo session", "Open /demo to use the demo clinic.", 403)
    request.state.ehr_iss = session.iss  # its frame-ancestors (main.content_security_policy)
    return session


SessionDep = Annotated[Session, Depends(require_session)]


def registration_of(settings: Settings, session: Session) -> EhrRegistration:
    registration = settings.registration_for(session.iss or "")
    if registration is None:
        raise Refusal("Not allowed", "This EHR is no longer on the app's allow-list.", 403)
    return registration


async def form_data(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (no python-multipart needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def checked_form(request: Request, session: SessionDep) -> dict[str, str]:
    """The POSTed form, after its CSRF token matched the session's (every state change)."""
    form = await form_data(request)
    sent = form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise Refusal(
            "Request refused", "The form's security token did not match; reload the page.", 403
        )
    return form


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def render(
    request: Request,
    templates: Jinja2Templates,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    base = {"demo": settings.demo, "now": time.time()}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
