"""``/launch`` (EHR and standalone) and ``/callback``: SMART App Launch 2.2, app-launch.md.

EHR launch:        the EHR opens ``/launch?iss=<FHIR base>&launch=<opaque>``
Standalone launch: ``/launch?iss=<FHIR base>`` or ``/launch`` with a configured ``default_iss``

1. ``iss`` must be on the allow-list — otherwise refuse, and send it nothing at all.
2. Discover the authorization server (``.well-known``, CapabilityStatement fallback); refuse one
   without PKCE S256.
3. Remember ``state`` (256 random bits), the PKCE verifier and the token URL in the server-side
   session named by the browser's cookie; redirect to ``authorize`` with ``aud = iss``.
4. ``/callback`` accepts only a ``state`` pending in *this browser's* session, exchanges the code
   (with the verifier), keeps tokens and launch context server-side, and issues a new session id.
"""

from __future__ import annotations

import logging
import re
import time

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from smart_app import idtoken, smart
from smart_app.deps import (
    Refusal,
    SettingsDep,
    StoreDep,
    fresh_session,
    session_from_cookie,
    set_session_cookie,
)
from smart_app.sessions import PendingLaunch, new_session

logger = logging.getLogger(__name__)

router = APIRouter()

_MAX_PENDING = 5  # launches in flight per browser session (several EHR tabs)


def _refuse(error: smart.LaunchError) -> Refusal:
    return Refusal(
        error.title,
        str(error),
        error.status,
        error=error.error,
        error_description=error.description,
    )


DISCOVERY_TTL = 300.0  # seconds a server's SMART configuration is reused across launches


async def _discovered(request: Request, iss: str, timeout: float) -> smart.SmartConfiguration:
    """The SMART configuration of ``iss``, discovered once per ``DISCOVERY_TTL`` per app (not
    on every launch: one request less between the EHR's click and the patient view). A
    failed discovery, or a configuration the launch refuses, is not kept."""
    cache: dict[str, tuple[float, smart.SmartConfiguration]] = getattr(
        request.app.state, "smart_configurations", None
    ) or {}
    request.app.state.smart_configurations = cache
    found = cache.get(iss)
    if found is not None and time.monotonic() - found[0] < DISCOVERY_TTL:
        return found[1]
    async with httpx.AsyncClient(timeout=timeout) as http:
        try:
            config = await smart.discover(http, iss)
        except smart.LaunchError as exc:
            raise _refuse(exc) from None
    if "S256" in config.code_challenge_methods:  # one the launch refuses is asked again
        cache[iss] = (time.monotonic(), config)
    return config


@router.get("/launch")
async def launch(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    iss: str | None = None,
    launch: str | None = None,
) -> Response:
    target = iss or settings.default_iss
    if not target:
        raise Refusal("No FHIR server named", "The launch did not say which EHR (iss) to use.")
    registration = settings.registration_for(target)
    if registration is None:
        logger.warning("launch refused: iss not on the allow-list")
        raise Refusal(
            "This EHR is not allowed",
            "The app is not registered with the FHIR server named in this launch, so it did "
            "not contact it. Ask your administrator to add it to the app's allow-list.",
            403,
        )
    ehr_launch = launch is not None
    if ehr_launch and not launch:
        raise Refusal("Launch refused", "The EHR sent an empty launch parameter.")

    config = await _discovered(request, registration.iss, settings.http_timeout)
    scope = smart.requested_scopes(registration, config, ehr_launch=ehr_launch)
    state = smart.new_state()
    verifier = smart.new_code_verifier()
    nonce = smart.new_state() if "openid" in scope.split() else None
    try:
        url = smart.authorize_url(
            config,
            registration,
            redirect_uri=settings.redirect_uri,
            scope=scope,
            state=state,
            code_verifier=verifier,
            launch=launch,
            nonce=nonce,
        )
    except smart.LaunchError as exc:
        raise _refuse(exc) from None

    request.state.ehr_iss = registration.iss  # frame-ancestors of this EHR (main.py)
    session = fresh_session(request)
    now = time.time()
    session.pending = {
        k: p
        for k, p in session.pending.items()
        if now - p.created_at < settings.pending_launch_ttl_seconds
    }
    while len(session.pending) >= _MAX_PENDING:
        session.pending.pop(next(iter(session.pending)))
    session.pending[state] = PendingLaunch(
        state=state,
        iss=registration.iss,
        code_verifier=verifier,
        token_endpoint=config.token_endpoint,
        scopes=scope,
        ehr_launch=ehr_launch,
        created_at=now,
        issuer=config.issuer or registration.oidc_issuer,
        jwks_uri=config.jwks_uri,
        nonce=nonce,
    )
    store.save(session)
    logger.info(
        "launch: %s launch, discovery via %s", "EHR" if ehr_launch else "standalone", config.source
    )
    response = RedirectResponse(url, status_code=302)
    set_session_cookie(response, session, settings)
    return response


@router.get("/callback")
async def callback(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    session = session_from_cookie(request)
    pending = session.pending.pop(state, None) if session is not None and state else None
    if session is None or pending is None:
        logger.warning("callback refused: state does not match this browser's session")
        raise Refusal(
            "Sign-in refused",
            "This sign-in response does not belong to a launch started in this browser "
            "(state mismatch). Start the launch again from the EHR.",
            400,
        )
    store.save(session)  # the state is single-use, whatever happens next
    if time.time() - pending.created_at > settings.pending_launch_ttl_seconds:
        raise Refusal("Sign-in expired", "The launch took too long; start it again.", 400)
    if error is not None or not code:
        # RFC 6749 §4.1.2.1: the server's error code and description, shown as sent (escaped);
        # the log keeps the code only (a description is free text).
        code_only = re.sub(r"[^A-Za-z0-9_.-]", "?", (error or "")[:64])
        logger.warning(
            "callback: authorization %s", f"refused ({code_only})" if error else "without a code"
        )
        raise Refusal(
            "Sign-in was not completed",
            "The authorization server did not authorize the app."
            if error
            else "The authorization server sent no authorization code.",
            400,
            error=error[:200] if error else None,
            error_description=error_description[:1000] if error_description else None,
        )
    registration = settings.registration_for(pending.iss)
    if registration is None:
        raise Refusal("This EHR is not allowed", "It was removed from the allow-list.", 403)
    try:
        tokens, context = await smart.exchange_code(
            registration,
            token_endpoint=pending.token_endpoint,
            code=code,
            code_verifier=pending.code_verifier,
            redirect_uri=settings.redirect_uri,
            timeout=settings.http_timeout,
        )
    except smart.LaunchError as exc:
        raise _refuse(exc) from None
    request.state.ehr_iss = registration.iss
    if tokens.id_token:
        # fhirUser is read only from a verified id_token (signature, iss, aud, exp/iat, nonce).
        async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
            try:
                claims = await idtoken.verify_id_token(
                    http,
                    tokens.id_token,
                    issuer=pending.issuer,
                    jwks_uri=pending.jwks_uri,
                    client_id=registration.client_id,
                    nonce=pending.nonce,
                )
            except idtoken.IdTokenError as exc:
                logger.warning("callback refused: id_token not verified (%s)", exc)
                raise Refusal(
                    "Sign-in refused",
                    f"The EHR's identity token could not be verified: {exc}. Nothing was "
                    "loaded; start the launch again from the EHR, or ask your administrator.",
                    401,
                ) from None
        fhir_user = claims.get("fhirUser")
        context.fhir_user = fhir_user if isinstance(fhir_user, str) and fhir_user else None

    # A new session id after sign-in (no fixation); the old one is dropped.
    signed_in = new_session()
    signed_in.iss = registration.iss
    signed_in.token = tokens
    signed_in.context = context
    signed_in.pending = session.pending
    store.delete(session.id)
    store.save(signed_in)
    logger.info("signed in: %s launch", "EHR" if pending.ehr_launch else "standalone")
    target = f"/patient/{context.patient}" if context.patient else "/registry"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, signed_in, settings)
    return response
