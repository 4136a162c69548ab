"""Scale-out: several ``bhi-fhir sync --worker`` processes split one run's patients.

Each worker runs the ordinary sync (``run_sync`` with ``SyncConfig.shared``) against the
same PostgreSQL store. Instead of processing every patient it found, a worker:

1. joins the server's open batch (or opens one from the stored watermark) — every worker of
   the batch searches from the same ``since``;
2. enqueues the patients it found (idempotent, keyed by batch and patient), each with the
   earliest ``lastUpdated`` of its changed screens;
3. claims groups of ``group_size`` patients (``FOR UPDATE SKIP LOCKED``, under a lease it
   renews while working) as long as it can keep them busy, processes them as the
   single-process sync does (its transactions packed across its groups), and records each
   patient done, failed (transient) or held (refused) once the group's writes are answered;
4. once nothing is left to claim, waits for the other workers' claims: a claim whose lease
   expires (its worker died) is taken over;
5. offers its watermark; the worker that finds every item finished closes the batch and
   advances the watermark — never past a failed patient's screens.

The queue itself is ``bhi_fhir.store.work``. SQLite cannot be shared so: ``--worker`` on
SQLite is refused up front.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from bhi_fhir.store import Store
from bhi_fhir.store.work import Batch, SharedStoreError, WorkQueue

if TYPE_CHECKING:
    from bhi_fhir.fhir.errors import FhirError
    from bhi_fhir.sync.report import RunReport
    from bhi_fhir.sync.source import Changed

__all__ = ["SharedRun", "SharedStoreError", "hold_below", "join_shared"]

# Waiting for other workers' claims: poll this often (one count query), and exactly until
# an expiring lease; the last claim finishing ends every waiting worker within this.
_POLL_S = 0.1


class RunState(Protocol):
    """What a worker reads and records of the sync run it is part of (the runner's run), named
    here so this module needs nothing from the runner, which imports it."""

    report: RunReport
    changed: Changed
    stop: FhirError | None  # set when the run must end (authorization, configuration)
    failed_patients: set[str]
    succeeded: set[str]

    def next_watermark(self) -> str | None: ...


# How a worker processes what it claims: drive(claim, finish) (pipeline.Pipeline.drive).
Drive = Callable[
    [Callable[[], Awaitable[list[str]]], Callable[[Sequence[str]], Awaitable[None]]],
    Awaitable[None],
]


def hold_below(changed: Changed, patients: Iterable[str]) -> dict[str, str | None]:
    """Each patient → the earliest ``lastUpdated`` of its changed screens (None: none, e.g.
    a held patient due for a retry)."""
    earliest: dict[str, str | None] = dict.fromkeys(patients)
    for resource in (*changed.responses, *changed.observations):
        patient = str(resource["subject"]["reference"])
        updated = (resource.get("meta") or {}).get("lastUpdated")
        if patient in earliest and isinstance(updated, str):
            current = earliest[patient]
            if current is None or updated < current:  # same server, same format
                earliest[patient] = updated
    return earliest


def join_shared(store: Store, server: str, lease_s: float) -> SharedRun:
    """Join (or open) the server's batch; :class:`SharedStoreError` on a store that cannot
    be shared (SQLite)."""
    queue = WorkQueue(store, server)
    return SharedRun(queue, queue.join(), timedelta(seconds=lease_s))


class SharedRun:
    """One worker's part of a shared batch."""

    def __init__(self, queue: WorkQueue, batch: Batch, lease: timedelta) -> None:
        self.queue, self.batch, self.lease = queue, batch, lease
        self.since = batch.since
        self.processed: list[str] = []  # patients this worker finished (any outcome)
        self.worker = ""

    async def work(
        self, run: RunState, patients: Sequence[str], drive: Drive, *, group_size: int,
    ) -> None:
        """Enqueue ``patients``, then ``drive(claim, finish)`` until the batch is done: it
        claims groups with ``claim`` (empty: none left) and calls ``finish`` with each group
        once its patients were processed."""
        self.worker = run.report.run_id
        self.queue.enqueue(self.batch, hold_below(run.changed, patients))
        held: set[str] = set()  # claimed by this worker, not finished: its leases to renew
        renewer = asyncio.create_task(self._renew(held))

        async def claim() -> list[str]:
            if run.stop is not None:
                return []
            group = self.queue.claim(self.batch, self.worker, group_size, self.lease)
            held.update(group)
            return group

        async def finish(group: Sequence[str]) -> None:
            states = self._outcomes(run, group)
            self.queue.finish(self.batch, self.worker, states)
            held.difference_update(group)
            self.processed += [p for p, s in states.items() if s != "queued"]

        try:
            while True:
                await drive(claim, finish)
                if run.stop is not None:
                    return
                left, expires_in = self.queue.unfinished(self.batch)
                if not left:
                    return
                # Others are still working (or died holding a claim): wait for theirs.
                wait = _POLL_S if expires_in is None else min(_POLL_S, max(expires_in, 0.05))
                await asyncio.sleep(wait)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if held:  # cancelled mid-group: give them back for another worker
                self.queue.finish(self.batch, self.worker, dict.fromkeys(held, "queued"))
            run.report.patients = len(self.processed)

    def _outcomes(self, run: RunState, group: Sequence[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for patient in group:
            if patient in run.failed_patients:
                states[patient] = "failed"
            elif patient in run.succeeded:
                states[patient] = "done"
            elif run.stop is not None:  # the run stopped before this patient was tried
                states[patient] = "queued"
            else:  # refused: held in the pending table, retried by a later run
                states[patient] = "held"
        return states

    async def _renew(self, held: set[str]) -> None:
        every = max(self.lease.total_seconds() / 3, 0.5)
        while True:
            await asyncio.sleep(every)
            if held:
                self.queue.renew(self.batch, self.worker, sorted(held), self.lease)

    def close(self, run: RunState) -> str | None:
        """Offer this worker's watermark; the watermark to advance to if this worker closed
        the batch (None otherwise, or when it must not move)."""
        candidate = run.next_watermark()
        if candidate is None and (run.changed.responses or run.changed.observations):
            candidate = self.since  # the worker's own failures hold it where it was
        return self.queue.close(self.batch, candidate)
