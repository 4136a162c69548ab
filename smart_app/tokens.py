"""The access token's life in a signed-in session: refreshed ahead, renewed once after a 401,
and a clear end when neither works.

* **Refresh ahead by a fraction of the lifetime** (``REFRESH_AHEAD`` of ``expires_in``): a
  one-hour token is refreshed in its last 15 minutes, a 40-second one in its last 10 seconds.
  A fixed margin refreshed on every page once tokens lived shorter than it, and refreshed too
  late for short ones.
* **No refresh token** (SMART 2.2 makes it optional): the token is used until it expires; then
  the session has ended — never before.
* **A 401 from the FHIR server** (a token revoked or expired early): refresh once, or take the
  token another request of the same session just got, and send the request again
  (:class:`SessionAuth`, an httpx auth flow, so every FHIR call of the views gets it). A second
  401, or a refresh that fails, raises :class:`SessionEnded`: the page says the session ended
  and offers a relaunch.

Refreshes of one session are serialised by a per-session lock, so concurrent requests never
spend one rotating refresh token twice (the loser would lose the session). The lock is per
process: several workers sharing a SQL session store need sticky sessions for that guarantee.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import Request
from fastapi.responses import Response

from smart_app import smart
from smart_app.config import Settings
from smart_app.deps import registration_of, render
from smart_app.sessions import Session, SessionStore, TokenSet

logger = logging.getLogger(__name__)

REFRESH_AHEAD = 0.25  # refresh once less than this fraction of the token's lifetime is left
LEGACY_MARGIN = 60.0  # seconds, for a token stored without its lifetime (older sessions)
CLOCK_SKEW = 5.0  # seconds: a token this close to its expiry is treated as expired


class SessionEnded(Exception):
    """The session's token is gone for good; ``reason`` is for the log (no PHI, no token)."""

    def __init__(self, reason: str, iss: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss


def expired(token: TokenSet, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return token.expires_at is not None and token.expires_at - now <= CLOCK_SKEW


def refresh_due(token: TokenSet, now: float | None = None) -> bool:
    """Whether to refresh before using the token: it has a refresh token and less than
    ``REFRESH_AHEAD`` of its lifetime left (or has expired)."""
    if not token.refresh_token or token.expires_at is None:
        return False
    now = time.time() if now is None else now
    margin = REFRESH_AHEAD * token.lifetime if token.lifetime else LEGACY_MARGIN
    return token.expires_at - now < max(margin, CLOCK_SKEW)


def _lock_for(app_state: Any, session: Session) -> asyncio.Lock:
    """One lock per session (weakly held: gone when no request waits on it)."""
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] | None = getattr(
        app_state, "refresh_locks", None
    )
    if locks is None:
        locks = app_state.refresh_locks = weakref.WeakValueDictionary()
    key = hashlib.sha256(session.id.encode()).hexdigest()
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


class TokenKeeper:
    """The session's access token for one request: fresh before use, renewed after a 401."""

    def __init__(
        self, app_state: Any, session: Session, settings: Settings, store: SessionStore
    ) -> None:
        self._app_state = app_state
        self.session = session
        self._settings = settings
        self._store = store

    @property
    def access_token(self) -> str:
        assert self.session.token is not None
        return self.session.token.access_token

    async def ready(self) -> None:
        """Before the first FHIR request: refresh ahead when due; an expired token that cannot
        be refreshed ends the session."""
        token = self.session.token
        assert token is not None
        if refresh_due(token):
            await self._refresh(rejected=None)
        elif expired(token):
            self._end("the access token expired and there is no refresh token")

    async def renew(self, rejected: str) -> str:
        """After the FHIR server answered 401 to ``rejected``: a token to try once more."""
        assert self.session.token is not None
        if not self.session.token.refresh_token:
            stored = self._store.get(self.session.id)
            if stored is None or stored.token is None or not stored.token.refresh_token:
                self._end("the FHIR server refused the token (401) and there is no refresh token")
        await self._refresh(rejected=rejected)
        return self.access_token

    async def _refresh(self, rejected: str | None) -> None:
        """Refresh under the session's lock. Inside it the stored session is read again: a
        token another request already got (not the rejected one, not due) is used as it is."""
        async with _lock_for(self._app_state, self.session):
            stored = self._store.get(self.session.id)
            if stored is not None and stored.token is not None:
                fresh = stored.token
                if fresh.access_token != rejected and not refresh_due(fresh) and not expired(fresh):
                    self.session.token = fresh
                    return
                self.session.token = fresh  # the newest refresh token on record
            current = self.session.token
            assert current is not None
            if not current.refresh_token:
                if rejected is None and not expired(current):
                    return
                self._end("the access token expired and there is no refresh token")
            try:
                self.session.token = await smart.refresh(
                    registration_of(self._settings, self.session),
                    current,
                    self._settings.http_timeout,
                )
            except smart.LaunchError as exc:
                if rejected is None and not expired(current):
                    # Refreshing ahead failed, but the token still works: use it meanwhile.
                    logger.warning("refresh ahead failed (%s); the token is still valid",
                                   exc.error or "no answer")
                    return
                self._end(f"the refresh failed ({exc.error or 'no answer'})")
            self._store.save(self.session)
            logger.info("access token refreshed (%s)", "after a 401" if rejected else "ahead")

    def _end(self, reason: str) -> None:
        raise SessionEnded(reason, self.session.iss)


class SessionAuth(httpx.Auth):
    """Bearer auth from the session's :class:`TokenKeeper`: on a 401, one renewed retry."""

    requires_response_body = False

    def __init__(self, keeper: TokenKeeper) -> None:
        self._keeper = keeper

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self._keeper.access_token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401:
            return
        logger.info("the FHIR server answered 401; renewing the token once")
        renewed = await self._keeper.renew(rejected=sent)
        request.headers["Authorization"] = f"Bearer {renewed}"
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("SessionAuth is for httpx.AsyncClient only")


def ended_session_page(request: Request, exc: SessionEnded) -> Response:
    """The page for a session whose token is gone: says so, offers a relaunch (a standalone
    launch at the same EHR), and forgets the session — the next page asks for a new sign-in."""
    settings: Settings = request.app.state.settings
    iss = exc.iss or getattr(request.state, "ehr_iss", None)
    logger.warning("session ended: %s", exc.reason)
    cookie = request.cookies.get(settings.cookie_name)
    if cookie:
        request.app.state.store.delete(cookie)
    relaunch = None
    if isinstance(iss, str) and settings.registration_for(iss) is not None:
        relaunch = "/launch?" + urlencode({"iss": iss})
    response = render(
        request,
        request.app.state.templates,
        "refusal.html",
        {
            "title": "Your session has ended",
            "message": "The EHR no longer accepts this sign-in, so nothing more can be read or "
            "saved. Open the app again from the patient's chart in the EHR, or sign in again "
            "here.",
            "relaunch": relaunch,
        },
        status_code=401,
    )
    response.delete_cookie(settings.cookie_name, path="/")
    return response
