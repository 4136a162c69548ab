"""CDS Hooks bearer JWTs seen, in the operational store: a ``jti`` is accepted once, whichever
app process (or host) receives it.

The spec ("Trusting CDS Clients") has the service reject a replayed ``jti``; with several app
workers an in-memory set would let each accept the same token once. The table lives in the
operational store (``bhi_fhir.store.Store``: SQLite by default, PostgreSQL by
``$BHI_STATE_URL``); the primary key (issuer, jti) makes the claim atomic, so two processes
racing with one token see one insert succeed. Rows are dropped once their token has expired
(its ``exp`` plus the clock leeway): such a token is refused on ``exp`` anyway. Nothing here is
PHI (issuer URL, a random token id, an expiry).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    Column,
    CursorResult,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    delete,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bhi_fhir.store import Store

__all__ = ["SEEN_JTI", "ReplayGuard"]

_METADATA = MetaData()  # its own metadata: the store's other tables are not created from here
SEEN_JTI = Table(
    "cds_seen_jti",
    _METADATA,
    Column("issuer", String(512), primary_key=True),
    Column("jti", String(512), primary_key=True),
    Column("expires_at", Float, nullable=False),  # POSIX seconds: the token's exp + leeway
)


# The dialects with INSERT … ON CONFLICT DO NOTHING (as bhi_fhir.store's watermark claim uses).
_ON_CONFLICT_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class ReplayGuard:
    """Claims of token ids in ``store`` (the table is created on first use)."""

    def __init__(self, store: Store) -> None:
        self.engine: Engine = store.engine
        _METADATA.create_all(self.engine)

    def claim(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """True the first time (issuer, jti) is claimed; False for a replay. One transaction
        (one commit on the hook's path): expired claims dropped, this one inserted unless there
        (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, as the store's own
        watermark claim; other dialects: a savepoint and the duplicate key)."""
        values = {"issuer": issuer, "jti": jti, "expires_at": expires_at}
        with self.engine.begin() as conn:
            conn.execute(delete(SEEN_JTI).where(SEEN_JTI.c.expires_at < now))
            dialect = conn.dialect.name
            if dialect in _ON_CONFLICT_INSERTS:
                statement = (_ON_CONFLICT_INSERTS[dialect](SEEN_JTI).values(**values)
                             .on_conflict_do_nothing(index_elements=["issuer", "jti"]))
                return cast("CursorResult[Any]", conn.execute(statement)).rowcount == 1
            try:
                with conn.begin_nested():
                    conn.execute(insert(SEEN_JTI).values(**values))
            except IntegrityError:
                return False
            return True
