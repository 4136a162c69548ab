"""Server-side sessions: tokens and launch context never leave the server.

The browser holds one opaque cookie: a random 256-bit session id. The store keys sessions by
the SHA-256 of that id, so a copy of the store alone cannot be replayed as cookies.

Two stores share the :class:`SessionStore` interface: :class:`MemorySessionStore` (one process,
the default) and :class:`SqlSessionStore` (SQLAlchemy; SQLite by default, any SQL by URL).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine, delete, select


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
        return self.demo or (self.token is not None and self.iss is not None)

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


class MemorySessionStore:
    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._data: dict[str, tuple[float, str]] = {}

    def get(self, session_id: str) -> Session | None:
        item = self._data.get(_key(session_id))
        if item is None:
            return None
        created, text = item
        if time.time() - created > self._ttl:
            self._data.pop(_key(session_id), None)
            return None
        return Session.from_json(session_id, text)

    def save(self, session: Session) -> None:
        self._data[_key(session.id)] = (session.created_at, session.to_json())

    def delete(self, session_id: str) -> None:
        self._data.pop(_key(session_id), None)


_metadata = MetaData()
_sessions = Table(
    "app_sessions",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("data", Text, nullable=False),
)


class SqlSessionStore:
    def __init__(self, url: str, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._engine = create_engine(url)
        _metadata.create_all(self._engine)

    def get(self, session_id: str) -> Session | None:
        with self._engine.begin() as db:
            row = db.execute(select(_sessions).where(_sessions.c.key == _key(session_id))).first()
            if row is None:
                return None
            if time.time() - row.created_at > self._ttl:
                db.execute(delete(_sessions).where(_sessions.c.key == row.key))
                return None
            return Session.from_json(session_id, row.data)

    def save(self, session: Session) -> None:
        key = _key(session.id)
        with self._engine.begin() as db:
            db.execute(delete(_sessions).where(_sessions.c.key == key))
            db.execute(
                _sessions.insert().values(
                    key=key, created_at=session.created_at, data=session.to_json()
                )
            )

    def delete(self, session_id: str) -> None:
        with self._engine.begin() as db:
            db.execute(delete(_sessions).where(_sessions.c.key == _key(session_id)))


def store_for(url: str | None, ttl_seconds: float) -> SessionStore:
    return SqlSessionStore(url, ttl_seconds) if url else MemorySessionStore(ttl_seconds)
