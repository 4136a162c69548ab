"""The operational store: watermarks, the run journal and the audit of our writes.

SQLite by default, PostgreSQL (or anything SQLAlchemy speaks) by URL::

    Store.open()                                   # $BHI_STATE_URL, else SQLite in the state dir
    Store.open("sqlite:///state.db")
    Store.open("postgresql+psycopg://user@host/bhi")

Clinical truth lives in the EHR: nothing here is PHI.
Watermarks only move forward, so two workers finishing out of order cannot move one back.
Patients whose writes the server refused are held in ``pending`` (ids and causes only) until a
later run succeeds for them or an operator resolves them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, create_engine, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bhi_fhir.exit_codes import EXIT_CONFIG, EXIT_UNAVAILABLE
from bhi_fhir.fhirjson import instant as _instant  # a stored instant read back
from bhi_fhir.store.models import Base, PendingPatient, RunRecord, Watermark, WriteAudit

__all__ = ["STATE_URL_ENV", "AuditRow", "Store", "StoreOpenError", "default_state_url"]

STATE_URL_ENV = "BHI_STATE_URL"
# A held patient is retried after 5 min, 10, 20, ... at most daily: a refusal usually needs a
# person (a profile, a terminology, a permission), so retrying faster only adds load.
PENDING_BACKOFF_BASE = timedelta(minutes=5)
PENDING_BACKOFF_MAX = timedelta(hours=24)


def default_state_url() -> str:
    """``$BHI_STATE_URL``, else ``sqlite:///<XDG state dir>/bhi-fhir/state.db``."""
    url = os.environ.get(STATE_URL_ENV)
    if url:
        return url
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{base / 'bhi-fhir' / 'state.db'}"


class StoreOpenError(Exception):
    """The store cannot be opened. ``transient``: the database did not answer (try again
    later); otherwise the URL, its driver or its path is wrong (fix the configuration).
    The message never holds the URL's password."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        """69 (unavailable) for a database that did not answer, else 78 (configuration)."""
        return EXIT_UNAVAILABLE if self.transient else EXIT_CONFIG


_URL_EXAMPLES = "e.g. sqlite:///path/state.db or postgresql+psycopg://user@host/bhi"


def _shown(url: str) -> str:
    """The URL as it may be printed: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


def _now() -> datetime:
    # Journal times are instants (UTC), not the practice's day (PracticePlan.today).
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One write we made (or found already made), by identifiers only."""

    rule: str
    identifier: str
    method: str
    outcome: str
    location: str | None = None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        Base.metadata.create_all(engine)

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Open (creating the tables if needed); raise :class:`StoreOpenError`, one line, for a
        URL that cannot be used or a database that does not answer."""
        url = url or default_state_url()
        try:
            if url.startswith("sqlite"):
                path = url.split(":///", 1)[1] if ":///" in url else ""
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError:  # an ArgumentError too: caught first
            scheme = url.split(":", 1)[0]
            raise StoreOpenError(
                f"state URL scheme {scheme!r} is not a supported database ({_URL_EXAMPLES})"
            ) from None
        except ArgumentError:
            raise StoreOpenError(f"state URL is not a database URL ({_URL_EXAMPLES})") from None
        except ImportError as exc:
            raise StoreOpenError(
                f"state URL {_shown(url)} needs the database driver {exc.name!r}, which is not "
                f"installed ({_URL_EXAMPLES})"
            ) from None
        except OSError as exc:
            raise StoreOpenError(
                f"state URL {_shown(url)}: cannot create its folder: {exc.strerror or exc}"
            ) from None
        try:
            return cls(engine)
        except OperationalError as exc:
            engine.dispose()
            reason = str(exc.orig or exc).strip().splitlines()[0]
            # A SQLite file that cannot be opened is a wrong path; a database server that does
            # not answer may be back later.
            raise StoreOpenError(
                f"cannot open the state store {_shown(url)}: {reason}",
                transient=engine.dialect.name != "sqlite",
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    # --- watermarks ---------------------------------------------------------------------------

    def watermark(self, server: str, stream: str = "QuestionnaireResponse") -> str | None:
        with self._session() as session:
            row = session.get(Watermark, (server, stream))
            return row.value if row else None

    def advance_watermark(
        self, server: str, value: str, *, stream: str = "QuestionnaireResponse", run_id: str | None
    ) -> str:
        """Move the watermark to ``value`` unless it is already later; returns the result.

        Safe with several workers at once, also when the row does not exist yet: the row is
        first claimed with an insert that is a no-op if it is there (so two first advances
        cannot collide on the key), then read under a lock and moved forward only. On
        PostgreSQL the lock is the row's (``SELECT … FOR UPDATE``); on SQLite the insert takes
        the database's write lock, held until commit, so the read cannot be stale.
        """
        with self._session() as session, session.begin():
            while True:
                if _claim_watermark(session, server, stream, value, run_id):
                    return value
                row = session.get(Watermark, (server, stream), with_for_update=True)
                if row is None:  # reset between our claim and our read: claim it again
                    continue
                if _instant(value) > _instant(row.value):
                    row.value, row.updated_at, row.run_id = value, _now(), run_id
                return row.value

    def reset_watermark(self, server: str, stream: str = "QuestionnaireResponse") -> None:
        with self._session() as session, session.begin():
            row = session.get(Watermark, (server, stream))
            if row is not None:
                session.delete(row)

    # --- run journal --------------------------------------------------------------------------

    def start_run(self, server: str, *, dry_run: bool = False, since: str | None = None) -> str:
        run_id = str(uuid.uuid4())
        with self._session() as session, session.begin():
            session.add(RunRecord(id=run_id, server=server, started_at=_now(), status="running",
                                  dry_run=dry_run, since=since, counts={}, errors=[]))
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        counts: Mapping[str, Any],
        errors: Iterable[Mapping[str, Any]],
        request_count: int,
        watermark: str | None,
    ) -> None:
        with self._session() as session, session.begin():
            row = session.get(RunRecord, run_id)
            if row is None:
                raise KeyError(run_id)
            row.finished_at = _now()
            row.status = status
            row.counts = dict(counts)
            row.errors = [dict(e) for e in errors]
            row.request_count = request_count
            row.watermark = watermark

    def mark_stale_runs(self, older_than: timedelta, *, server: str | None = None) -> int:
        """Close journal rows left ``running`` by a process that died (killed, power lost):
        status ``abandoned`` for runs started more than ``older_than`` ago. Returns how many."""
        now = _now()
        statement = (
            update(RunRecord)
            .where(RunRecord.status == "running", RunRecord.started_at < now - older_than)
            .values(status="abandoned", finished_at=now)
        )
        if server is not None:
            statement = statement.where(RunRecord.server == server)
        with self._session() as session, session.begin():
            result = cast("CursorResult[Any]", session.execute(statement))
            return int(result.rowcount or 0)

    def run(self, run_id: str) -> RunRecord | None:
        with self._session() as session:
            return session.get(RunRecord, run_id)

    def runs(self, server: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = select(RunRecord).order_by(RunRecord.started_at.desc()).limit(limit)
        if server is not None:
            query = query.where(RunRecord.server == server)
        with self._session() as session:
            return list(session.scalars(query))

    # --- audit of our writes ------------------------------------------------------------------

    def record_writes(self, run_id: str, server: str, rows: Iterable[AuditRow]) -> int:
        at = _now()
        items = [
            {"run_id": run_id, "server": server, "at": at, "rule": r.rule,
             "identifier": r.identifier, "method": r.method, "outcome": r.outcome,
             "location": r.location}
            for r in rows
        ]
        if items:  # one executemany, not one ORM object and INSERT per write
            with self._session() as session, session.begin():
                session.execute(insert(WriteAudit), items)
        return len(items)

    def writes(self, run_id: str) -> list[WriteAudit]:
        with self._session() as session:
            return list(session.scalars(select(WriteAudit).where(WriteAudit.run_id == run_id)
                                        .order_by(WriteAudit.id)))


    # --- patients held after a refusal -------------------------------------------------------

    def hold_patient(
        self, server: str, patient: str, *, cause: str, reason: str, run_id: str | None
    ) -> PendingPatient:
        """Hold ``patient`` (or count one more failed attempt): retried after a backoff that
        doubles with each attempt. ``reason`` must carry no PHI (see ``safe_reason``)."""
        for _ in range(3):  # a concurrent first hold of the same patient: update it instead
            try:
                with self._session() as session, session.begin():
                    now = _now()
                    row = session.get(PendingPatient, (server, patient), with_for_update=True)
                    if row is None:
                        row = PendingPatient(server=server, patient=patient, attempts=0,
                                             first_failed_at=now)
                        session.add(row)
                    row.attempts += 1
                    row.cause, row.reason, row.run_id = cause, reason, run_id
                    row.last_failed_at = now
                    row.next_attempt_at = now + _backoff(row.attempts)
                    return row
            except IntegrityError:
                continue
        raise RuntimeError("could not hold the patient")  # pragma: no cover

    def release_patients(self, server: str, patients: Iterable[str]) -> int:
        """Remove patients from the hold (their writes succeeded, or an operator resolved
        them). Returns how many were held."""
        wanted = list(patients)
        if not wanted:
            return 0
        with self._session() as session, session.begin():
            rows = session.scalars(select(PendingPatient).where(
                PendingPatient.server == server, PendingPatient.patient.in_(wanted)))
            found = list(rows)
            for row in found:
                session.delete(row)
            return len(found)

    def due_patients(self, server: str) -> list[str]:
        """Held patients whose backoff has passed: the next run retries them."""
        query = (select(PendingPatient.patient)
                 .where(PendingPatient.server == server, PendingPatient.next_attempt_at <= _now())
                 .order_by(PendingPatient.next_attempt_at))
        with self._session() as session:
            return list(session.scalars(query))

    def pending(self, server: str | None = None) -> list[PendingPatient]:
        """Every held patient (of ``server``), oldest failure first."""
        query = select(PendingPatient).order_by(PendingPatient.first_failed_at)
        if server is not None:
            query = query.where(PendingPatient.server == server)
        with self._session() as session:
            return list(session.scalars(query))


def _backoff(attempts: int) -> timedelta:
    step = PENDING_BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 20))
    return min(step, PENDING_BACKOFF_MAX)


def _claim_watermark(
    session: Session, server: str, stream: str, value: str, run_id: str | None
) -> bool:
    """Insert the watermark row unless it exists; True if this call created it.

    ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite: a concurrent insert of the
    same key waits for the other transaction and then does nothing. Other dialects: the plain
    insert in a savepoint, a duplicate key rolled back to it.
    """
    values = {"server": server, "stream": stream, "value": value, "updated_at": _now(),
              "run_id": run_id}
    dialect = session.get_bind().dialect.name
    if dialect in _ON_CONFLICT_INSERTS:
        statement = (_ON_CONFLICT_INSERTS[dialect](Watermark).values(**values)
                     .on_conflict_do_nothing(index_elements=["server", "stream"]))
        result = cast("CursorResult[Any]", session.execute(statement))
        return result.rowcount == 1
    try:
        with session.begin_nested():
            session.execute(insert(Watermark).values(**values))
    except IntegrityError:
        return False
    return True


_ON_CONFLICT_INSERTS: dict[str, Callable[[type[Watermark]], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets a reader (status) and a writer (sync) work at once; several syncs wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
