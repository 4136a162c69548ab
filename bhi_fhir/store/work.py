"""The shared work queue of sync workers: PostgreSQL row locks, no coordinator process.

Several ``bhi-fhir sync --worker`` processes (on one machine or many) pointed at the same
PostgreSQL store split one run's patients between them:

* **join** — the first worker opens the server's batch (one row per server in
  ``work_batches``, from the stored watermark); later workers join the open batch. Opening
  and joining serialise on that row's lock (``SELECT … FOR UPDATE``).
* **enqueue** — each worker enqueues the patients it found, keyed by (batch, patient)
  (``INSERT … ON CONFLICT DO NOTHING``): enqueuing twice is a no-op.
* **claim** — a worker takes up to ``n`` queued patients, or claimed ones whose lease expired
  (their worker died), with ``SELECT … FOR UPDATE SKIP LOCKED``: two workers never take the
  same row, and neither waits for the other. A worker renews its leases while it works.
* **finish** — each claimed patient ends ``done``, ``failed`` (transient: the watermark is
  held below its screens) or ``held`` (refused: the ``pending`` table has it).
* **close** — a worker that finds nothing unfinished closes the batch and gets the
  watermark to advance: the earliest any worker allowed, held below every failed item.

The database's clock (``now()``) times the leases, so workers on machines whose clocks
differ agree on when a lease expired. SQLite has no row locks to skip: the queue needs
PostgreSQL, and says so (:class:`SharedStoreError`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql

from bhi_fhir.store._store import Store
from bhi_fhir.store.models import Watermark, WorkBatch, WorkItem

__all__ = ["FINISHED", "Batch", "SharedStoreError", "WorkQueue"]

FINISHED = ("done", "failed", "held")
_INSERT_CHUNK = 1000


class SharedStoreError(ValueError):
    """The store cannot be shared by workers (it is not PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    since: str | None


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _earliest(values: Iterable[str | None]) -> str | None:
    present = [v for v in values if v]
    return min(present, key=_instant) if present else None


class WorkQueue:
    """The work items of one server's shared batches, in ``store``."""

    def __init__(self, store: Store, server: str) -> None:
        if store.engine.dialect.name != "postgresql":
            raise SharedStoreError(
                "sync workers share the run through PostgreSQL row locks: --worker needs a "
                f"PostgreSQL --state-url (this store is {store.engine.dialect.name}); "
                "with SQLite, run one sync at a time"
            )
        self.store, self.server = store, server.rstrip("/")

    def join(self, stream: str = "QuestionnaireResponse") -> Batch:
        """The server's open batch, opened from the stored watermark if there is none."""
        with self.store._session() as session, session.begin():
            fresh = str(uuid.uuid4())
            session.execute(
                postgresql.insert(WorkBatch)
                .values(server=self.server, id=fresh, since=None, status="done",
                        opened_at=func.now())
                .on_conflict_do_nothing(index_elements=["server"])
            )
            row = session.get(WorkBatch, self.server, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.status != "open":
                if row.id != fresh:  # the previous batch's items: its journal is closed
                    session.execute(delete(WorkItem).where(WorkItem.batch_id == row.id))
                mark = session.get(Watermark, (self.server, stream))
                row.id, row.since, row.status = fresh, mark.value if mark else None, "open"
                row.opened_at, row.closed_at = datetime.now(UTC), None
                row.candidate = row.watermark = None
            return Batch(row.id, row.since)

    def enqueue(self, batch: Batch, patients: Mapping[str, str | None]) -> int:
        """Add ``patient → hold_below`` items (those already there are kept); returns how
        many were new."""
        added = 0
        items = list(patients.items())
        with self.store._session() as session, session.begin():
            base = session.scalar(select(func.coalesce(func.max(WorkItem.seq), 0))
                                  .where(WorkItem.batch_id == batch.id)) or 0
            for start in range(0, len(items), _INSERT_CHUNK):
                rows = [
                    {"batch_id": batch.id, "patient": patient, "seq": base + start + i + 1,
                     "state": "queued", "claims": 0, "hold_below": hold}
                    for i, (patient, hold) in enumerate(items[start : start + _INSERT_CHUNK])
                ]
                added += len(session.execute(
                    postgresql.insert(WorkItem).values(rows)
                    .on_conflict_do_nothing(index_elements=["batch_id", "patient"])
                    .returning(WorkItem.patient)).all())
        return added

    def claim(self, batch: Batch, worker: str, n: int, lease: timedelta) -> list[str]:
        """Up to ``n`` patients for ``worker``: queued ones, or claimed ones whose lease
        expired, in the order they were found; rows other workers hold are skipped."""
        # The locked rows in a CTE joined by key: a subquery under ``IN`` may be run again by
        # the planner and lock (and update) more rows than the LIMIT.
        claimable = (
            select(WorkItem.patient)
            .where(WorkItem.batch_id == batch.id,
                   (WorkItem.state == "queued")
                   | ((WorkItem.state == "claimed") & (WorkItem.lease_until < func.now())))
            .order_by(WorkItem.seq)
            .limit(max(1, n))
            .with_for_update(skip_locked=True)
            .cte("claimable")
        )
        items = cast("Table", WorkItem.__table__)
        statement = (
            update(items)
            .where(items.c.batch_id == batch.id,
                   items.c.patient == claimable.c.patient)
            .values(state="claimed", worker=worker, lease_until=func.now() + lease,
                    claims=items.c.claims + 1)
            .returning(items.c.patient, items.c.seq)
        )
        with self.store.engine.begin() as connection:
            rows = connection.execute(statement).all()
        return [patient for patient, _ in sorted(rows, key=lambda r: r[1])]

    def renew(self, batch: Batch, worker: str, patients: Sequence[str], lease: timedelta) -> int:
        """Extend ``worker``'s leases on ``patients`` (those still its own)."""
        if not patients:
            return 0
        with self.store._session() as session, session.begin():
            result = cast("CursorResult[Any]", session.execute(
                update(WorkItem)
                .where(WorkItem.batch_id == batch.id, WorkItem.patient.in_(list(patients)),
                       WorkItem.worker == worker, WorkItem.state == "claimed")
                .values(lease_until=func.now() + lease)))
            return int(result.rowcount or 0)

    def finish(self, batch: Batch, worker: str, states: Mapping[str, str]) -> None:
        """Record each patient's outcome (``queued`` gives it back unfinished)."""
        by_state: dict[str, list[str]] = {}
        for patient, state in states.items():
            by_state.setdefault(state, []).append(patient)
        with self.store._session() as session, session.begin():
            for state, patients in by_state.items():
                done = state in FINISHED
                session.execute(
                    update(WorkItem)
                    .where(WorkItem.batch_id == batch.id, WorkItem.patient.in_(patients),
                           WorkItem.state == "claimed")
                    .values(state=state, worker=worker,
                            lease_until=None, finished_at=func.now() if done else None))

    def unfinished(self, batch: Batch) -> tuple[int, float | None]:
        """How many items are not finished, and the seconds until the earliest lease of a
        claimed one expires (None when none is claimed)."""
        with self.store._session() as session:
            left = session.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.batch_id == batch.id, WorkItem.state.not_in(FINISHED))) or 0
            wait = session.scalar(
                select(func.min(func.extract("epoch", WorkItem.lease_until - func.now())))
                .where(WorkItem.batch_id == batch.id, WorkItem.state == "claimed"))
        return int(left), (float(wait) if wait is not None else None)

    def close(self, batch: Batch, candidate: str | None) -> str | None:
        """Offer this worker's watermark ``candidate``; if every item is finished, close the
        batch and return the watermark to advance to (None: do not move it)."""
        with self.store._session() as session, session.begin():
            row = session.get(WorkBatch, self.server, with_for_update=True, populate_existing=True)
            if row is None or row.id != batch.id or row.status != "open":
                return None  # another worker closed it
            row.candidate = _earliest([row.candidate, candidate])
            left = session.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.batch_id == batch.id, WorkItem.state.not_in(FINISHED))) or 0
            if left:
                return None
            holds = session.scalars(select(WorkItem.hold_below).where(
                WorkItem.batch_id == batch.id, WorkItem.state == "failed",
                WorkItem.hold_below.is_not(None)))
            watermark = _earliest([row.candidate, *holds])
            if watermark and batch.since and _instant(watermark) <= _instant(batch.since):
                watermark = None
            row.status, row.closed_at, row.watermark = "done", datetime.now(UTC), watermark
            return watermark

    def items(self, batch_id: str) -> list[WorkItem]:
        """The items of a batch, in claim order (for reports and tests)."""
        with self.store._session() as session:
            return list(session.scalars(select(WorkItem).where(WorkItem.batch_id == batch_id)
                                        .order_by(WorkItem.seq)))

    def batch(self) -> WorkBatch | None:
        """The server's current (or last) batch."""
        with self.store._session() as session:
            return session.get(WorkBatch, self.server)
