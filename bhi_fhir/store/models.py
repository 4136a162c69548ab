"""Tables of the operational store. Ids, counts and timestamps only — never PHI.

* ``watermarks``  — per server and stream, the ``_lastUpdated`` instant the next sync starts at;
* ``runs``        — the run journal: one row per sync run, its counts, errors, request count;
* ``writes``      — the audit of our own writes: what we wrote where, for which rule, when;
* ``pending``     — patients whose writes the server refused: held for an operator, retried
  with backoff by later runs until one succeeds or an operator resolves them.

Errors in the journal name resources by type/id and say what went wrong; they never carry
resource content.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Watermark(Base):
    __tablename__ = "watermarks"

    server: Mapped[str] = mapped_column(String(500), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(40))  # FHIR instant, as the server gave it
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str | None] = mapped_column(String(36))


class RunRecord(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    server: Mapped[str] = mapped_column(String(500), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # running | ok | partial | failed
    dry_run: Mapped[bool] = mapped_column(default=False)
    since: Mapped[str | None] = mapped_column(String(40))
    watermark: Mapped[str | None] = mapped_column(String(40))  # where the run left it
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)


class WriteAudit(Base):
    __tablename__ = "writes"
    __table_args__ = (Index("ix_writes_identifier", "server", "identifier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    server: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rule: Mapped[str] = mapped_column(String(100))
    identifier: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10))  # create | update
    outcome: Mapped[str] = mapped_column(String(20))  # created | updated | existed | ...
    location: Mapped[str | None] = mapped_column(String(300))  # Type/id/_history/v


class PendingPatient(Base):
    """A patient held after a refusal: the patient id, why (cause + codes), and when next."""

    __tablename__ = "pending"

    server: Mapped[str] = mapped_column(String(500), primary_key=True)
    patient: Mapped[str] = mapped_column(String(200), primary_key=True)  # "Patient/<id>"
    cause: Mapped[str] = mapped_column(String(20))  # refused | transient | ...
    reason: Mapped[str] = mapped_column(Text)  # error type, status, issue codes: no PHI
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    run_id: Mapped[str | None] = mapped_column(String(36))  # the run that last failed it


class WorkBatch(Base):
    """The run several sync workers share on one server (``bhi-fhir sync --worker``): at most
    one open batch per server, the watermark it started from, and the earliest watermark a
    finished worker allows. The worker that finds every item finished closes it."""

    __tablename__ = "work_batches"

    server: Mapped[str] = mapped_column(String(500), primary_key=True)
    id: Mapped[str] = mapped_column(String(36))
    since: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # open | done
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    candidate: Mapped[str | None] = mapped_column(String(40))
    watermark: Mapped[str | None] = mapped_column(String(40))  # where the batch left it


class WorkItem(Base):
    """One patient of a shared batch: claimed by one worker at a time (``FOR UPDATE SKIP
    LOCKED``) under a lease, which another worker takes over once it expires."""

    __tablename__ = "work_items"
    __table_args__ = (Index("ix_work_items_state", "batch_id", "state", "seq"),)

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient: Mapped[str] = mapped_column(String(200), primary_key=True)  # "Patient/<id>"
    seq: Mapped[int] = mapped_column(Integer)  # claim order: the order the search found them
    state: Mapped[str] = mapped_column(String(20))  # queued | claimed | done | failed | held
    worker: Mapped[str | None] = mapped_column(String(36))  # the run (journal row) holding it
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claims: Mapped[int] = mapped_column(Integer, default=0)  # > 1: taken over after a lease
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The earliest lastUpdated of the patient's changed screens: a transient failure holds
    # the batch's watermark below it.
    hold_below: Mapped[str | None] = mapped_column(String(40))
