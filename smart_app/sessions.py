"""Server-side sessions: tokens and launch context never leave the server.

The browser holds one opaque cookie: a random 256-bit session id. The store keys sessions by
the SHA-256 of that id, so a copy of the store alone cannot be replayed as cookies.

Two stores share the :class:`SessionStore` interface: :class:`MemorySessionStore` (one process,
the default) and :class:`SqlSessionStore` (SQLAlchemy; SQLite by default, any SQL by URL).

Anyone can make a session (every cookie-less ``/launch`` or ``/demo``), so sessions not signed
in to an EHR are kept apart and bounded: at most ``max_prelogin`` of them (the soonest to
expire go first), and a launch on its way lives ``prelogin_ttl_seconds`` from its last save
(10 minutes by default) — only a completed sign-in gets the full ``ttl_seconds``. A demo
session also lives ``ttl_seconds`` but counts against the bound.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    select,
)


@dataclass
class PendingLaunch:
    """An authorization request on its way: what the callback must check and needs."""

    state: str
    iss: str
    code_verifier: str
    token_endpoint: str
    scopes: str
    ehr_launch: bool
    created_at: float
    issuer: str | None = None  # OpenID issuer the id_token must come from
    jwks_uri: str | None = None  # its key set (None: OIDC discovery on the issuer)
    nonce: str | None = None  # sent on authorize when openid was requested


@dataclass
class TokenSet:
    access_token: str
    token_type: str
    scope: str
    expires_at: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    token_endpoint: str = ""
    lifetime: float | None = None  # expires_in as granted, seconds (refresh ahead by a share)


@dataclass
class LaunchContext:
    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    intent: str | None = None
    tenant: str | None = None
    fhir_context: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Session:
    id: str  # the cookie value; never stored, never logged
    csrf_token: str
    created_at: float
    pending: dict[str, PendingLaunch] = field(default_factory=dict)
    iss: str | None = None
    token: TokenSet | None = None
    context: LaunchContext = field(default_factory=LaunchContext)
    demo: bool = False

    @property
    def authorized(self) -> bool:
        return self.demo or self.signed_in

    @property
    def signed_in(self) -> bool:
        """Signed in to an EHR (the sign-in completed): kept apart from pre-login sessions."""
        return self.token is not None and self.iss is not None

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("id")
        return json.dumps(data)

    @classmethod
    def from_json(cls, session_id: str, text: str) -> Session:
        data = json.loads(text)
        pending = {k: PendingLaunch(**v) for k, v in (data.pop("pending") or {}).items()}
        token = TokenSet(**data.pop("token")) if data.get("token") else None
        data.pop("token", None)
        context = LaunchContext(**data.pop("context"))
        return cls(id=session_id, pending=pending, token=token, context=context, **data)


def new_session() -> Session:
    return Session(
        id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32), created_at=time.time()
    )


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore(Protocol):
    def get(self, session_id: str) -> Session | None: ...

    def save(self, session: Session) -> None: ...

    def delete(self, session_id: str) -> None: ...


DEFAULT_PRELOGIN_TTL = 600.0
DEFAULT_MAX_PRELOGIN = 1000


class _Lifetimes:
    """When a session expires: signed in, ``ttl`` from sign-in; a demo session, ``ttl`` from
    its last save; a launch on its way, ``prelogin_ttl`` from its last save."""

    def __init__(self, ttl: float, prelogin_ttl: float | None, max_prelogin: int | None) -> None:
        self.ttl = ttl
        self.prelogin_ttl = min(ttl, DEFAULT_PRELOGIN_TTL if prelogin_ttl is None else prelogin_ttl)
        self.max_prelogin = max(1, DEFAULT_MAX_PRELOGIN if max_prelogin is None else max_prelogin)

    def expires_at(self, session: Session) -> float:
        if session.signed_in:
            return session.created_at + self.ttl
        return time.time() + (self.ttl if session.demo else self.prelogin_ttl)


class MemorySessionStore:
    def __init__(
        self,
        ttl_seconds: float,
        prelogin_ttl_seconds: float | None = None,
        max_prelogin: int | None = None,
    ) -> None:
        self._life = _Lifetimes(ttl_seconds, prelogin_ttl_seconds, max_prelogin)
        self._data: dict[str, tuple[float, str]] = {}  # signed in: key -> (expires_at, json)
        self._prelogin: dict[str, tuple[float, str]] = {}  # the others, bounded

    def get(self, session_id: str) -> Session | None:
        key = _key(session_id)
        for table in (self._data, self._prelogin):
            item = table.get(key)
            if item is None:
                continue
            expires_at, text = item
            if time.time() >= expires_at:
                table.pop(key, None)
                return None
            return Session.from_json(session_id, text)
        return None

    def save(self, session: Session) -> None:
        key = _key(session.id)
        item = (self._life.expires_at(session), session.to_json())
        if session.signed_in:
            self._prelogin.pop(key, None)
            self._data[key] = item
            return
        self._data.pop(key, None)
        self._prelogin[key] = item
        if len(self._prelogin) > self._life.max_prelogin:
            now = time.time()
            for gone in [k for k, (expires, _) in self._prelogin.items() if expires <= now]:
                del self._prelogin[gone]
            by_expiry = sorted(self._prelogin, key=lambda k: self._prelogin[k][0])
            for gone in by_expiry[: len(self._prelogin) - self._life.max_prelogin]:
                del self._prelogin[gone]

    def delete(self, session_id: str) -> None:
        self._data.pop(_key(session_id), None)
        self._prelogin.pop(_key(session_id), None)


_metadata = MetaData()
_sessions = Table(
    "app_sessions",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("data", Text, nullable=False),
)
# Sessions not signed in to an EHR (a launch on its way, the demo): a table of their own, so
# the bound counts them alone and existing ``app_sessions`` tables keep their schema.
_prelogin = Table(
    "app_prelogin_sessions",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
    Column("data", Text, nullable=False),
)


class SqlSessionStore:
    def __init__(
        self,
        url: str,
        ttl_seconds: float,
        prelogin_ttl_seconds: float | None = None,
        max_prelogin: int | None = None,
    ) -> None:
        self._life = _Lifetimes(ttl_seconds, prelogin_ttl_seconds, max_prelogin)
        self._engine = create_engine(url)
        _metadata.create_all(self._engine)

    def get(self, session_id: str) -> Session | None:
        key = _key(session_id)
        now = time.time()
        with self._engine.begin() as db:
            row = db.execute(select(_sessions).where(_sessions.c.key == key)).first()
            if row is not None:
                if now - row.created_at > self._life.ttl:
                    db.execute(delete(_sessions).where(_sessions.c.key == key))
                    return None
                return Session.from_json(session_id, row.data)
            pre = db.execute(select(_prelogin).where(_prelogin.c.key == key)).first()
            if pre is None:
                return None
            if now >= pre.expires_at:
                db.execute(delete(_prelogin).where(_prelogin.c.key == key))
                return None
            return Session.from_json(session_id, pre.data)

    def save(self, session: Session) -> None:
        key = _key(session.id)
        with self._engine.begin() as db:
            db.execute(delete(_sessions).where(_sessions.c.key == key))
            db.execute(delete(_prelogin).where(_prelogin.c.key == key))
            if session.signed_in:
                db.execute(
                    _sessions.insert().values(
                        key=key, created_at=session.created_at, data=session.to_json()
                    )
                )
                return
            db.execute(
                _prelogin.insert().values(
                    key=key, expires_at=self._life.expires_at(session), data=session.to_json()
                )
            )
            db.execute(delete(_prelogin).where(_prelogin.c.expires_at <= time.time()))
            over = (db.execute(select(func.count()).select_from(_prelogin)).scalar() or 0) - (
                self._life.max_prelogin
            )
            if over > 0:
                oldest = select(_prelogin.c.key).order_by(_prelogin.c.expires_at).limit(over)
                db.execute(delete(_prelogin).where(_prelogin.c.key.in_(oldest.scalar_subquery())))

    def delete(self, session_id: str) -> None:
        with self._engine.begin() as db:
            db.execute(delete(_sessions).where(_sessions.c.key == _key(session_id)))
            db.execute(delete(_prelogin).where(_prelogin.c.key == _key(session_id)))


def store_for(
    url: str | None,
    ttl_seconds: float,
    prelogin_ttl_seconds: float | None = None,
    max_prelogin: int | None = None,
) -> SessionStore:
    if url:
        return SqlSessionStore(url, ttl_seconds, prelogin_ttl_seconds, max_prelogin)
    return MemorySessionStore(ttl_seconds, prelogin_ttl_seconds, max_prelogin)
