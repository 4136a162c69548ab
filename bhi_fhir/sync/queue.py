"""Bounded, coalescing queue for the sync runs that Subscription notifications ask for.

A notification is a hint that something changed; the watermark is the source of truth. So:

* **Coalescing.** Work is keyed by patient (``"Patient/<id>"``), or :data:`FULL` for the
  incremental run from the watermark (an empty notification). A key has at most one run in
  flight and at most one follow-up queued: a notification for a key that is queued already is
  absorbed; one for a key whose run is in flight marks it *dirty*, and when that run ends it
  runs once more — a write that arrived mid-run is read by the follow-up, never missed.
* **A global limit** (``limit``) on concurrent runs; the rest waits in FIFO order.
* **Bounded memory.** When more than ``max_queued`` distinct patients wait, the queue
  *collapses*: every waiting patient is dropped in favour of one :data:`FULL` run (queued, or
  a follow-up of the one in flight). Nothing is lost: a full run that starts after a
  notification reads every response written before it (the watermark never moves past a
  response a full run has not processed — patient runs do not move it at all). For the same
  reason a notification for a patient arriving while a full run is queued (not yet started)
  is absorbed by it.
* **Shutdown** (:meth:`SyncQueue.close`) waits ``grace`` seconds for the runs in flight, cancels
  the rest and logs how many runs were not done. Their changes are not lost either: they are
  still above the watermark, so the next full sync (``bhi-fhir sync``, an empty notification,
  or a collapse) processes them.

Logs carry counts only, never a patient id (PHI).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QueueStatus", "SyncQueue"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FULL: None = None  # the key of the incremental run from the watermark
Key = str | None
RunFn = Callable[[Key], Awaitable[Any]]


@dataclass(frozen=True)
class QueueStatus:
    """Counts only (no ids): safe to expose without authentication."""

    in_flight: int
    queued: int  # runs waiting to start, follow-ups of runs in flight included
    full_run_in_flight: bool
    full_run_queued: bool
    accepted: int  # notifications submitted
    coalesced: int  # notifications absorbed by a queued or follow-up run
    collapsed: int  # times the queue overflowed into one full run
    completed: int
    failed: int
    limit: int
    max_queued: int
    closed: bool

    @classmethod
    def empty(cls, limit: int, max_queued: int) -> QueueStatus:
        """Before the first notification (no queue yet)."""
        return cls(0, 0, False, False, 0, 0, 0, 0, 0, limit, max_queued, False)

    def as_json(self) -> dict[str, Any]:
        """camelCase keys, like the FHIR around it."""
        def camel(name: str) -> str:
            first, *rest = name.split("_")
            return first + "".join(word.capitalize() for word in rest)

        return {camel(name): value for name, value in asdict(self).items()}


class SyncQueue:
    """Run ``run(key)`` for submitted keys: coalesced, at most ``limit`` at once.

    Create it inside the event loop that will run the work; :meth:`submit` is synchronous
    and O(1) (a notification handler calls it and answers at once).
    """

    def __init__(self, run: RunFn, *, limit: int = 4, max_queued: int = 10_000,
                 grace: float = 10.0) -> None:
        if limit < 1 or max_queued < 1:
            raise ValueError("limit and max_queued must be at least 1")
        self._run = run
        self.limit, self.max_queued, self.grace = limit, max_queued, grace
        self.loop = asyncio.get_running_loop()
        self._pending: dict[Key, None] = {}  # insertion-ordered; never a key that is running
        self._dirty: set[Key] = set()  # running keys notified again: one follow-up each
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.accepted = self.coalesced = self.collapsed = self.completed = self.failed = 0

    # -- state ------------------------------------------------------------------------------

    def _waiting_patients(self) -> int:
        return (len(self._pending) - (FULL in self._pending)
                + len(self._dirty) - (FULL in self._dirty))

    def _full_will_start_later(self) -> bool:
        """A full run starts after now: queued, or a follow-up of the one in flight."""
        return FULL in self._pending or FULL in self._dirty

    def status(self) -> QueueStatus:
        return QueueStatus(
            in_flight=len(self._running),
            queued=len(self._pending) + len(self._dirty),
            full_run_in_flight=FULL in self._running,
            full_run_queued=self._full_will_start_later(),
            accepted=self.accepted, coalesced=self.coalesced, collapsed=self.collapsed,
            completed=self.completed, failed=self.failed,
            limit=self.limit, max_queued=self.max_queued, closed=self._closed,
        )

    # -- submitting -------------------------------------------------------------------------

    def submit(self, key: Key) -> None:
        """Ask for a run of ``key`` (a patient reference, or :data:`FULL`)."""
        self.accepted += 1
        if key is not FULL and self._full_will_start_later():
            self.coalesced += 1  # the full run starts after this notification: it covers it
        elif key in self._running:
            if key in self._dirty:
                self.coalesced += 1
            else:
                self._dirty.add(key)
        elif key in self._pending:
            self.coalesced += 1
        elif key is not FULL and self._waiting_patients() >= self.max_queued:
            self._collapse()
        else:
            self._pending[key] = None
        self._idle.clear()
        self._pump()
        if not self._running and not self._pending:
            self._idle.set()

    def _collapse(self) -> None:
        # no full run will start later (submit checked): the waiting ones are all patients
        dropped = self._waiting_patients() + 1  # and the one being submitted
        self._pending, self._dirty = {}, set()
        if FULL in self._running:
            self._dirty.add(FULL)
        else:
            self._pending[FULL] = None
        self.collapsed += 1
        self.coalesced += dropped
        logger.warning(
            "notification queue over %d patients: %d waiting patient runs collapsed into one "
            "full sync from the watermark", self.max_queued, dropped,
        )

    # -- running ----------------------------------------------------------------------------

    def _pump(self) -> None:
        while not self._closed and self._pending and len(self._running) < self.limit:
            key = next(iter(self._pending))
            del self._pending[key]
            self._running[key] = self.loop.create_task(self._one(key))

    async def _one(self, key: Key) -> None:
        try:
            await self._run(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one run's failure must not stop the others
            self.failed += 1
            # type only: messages may carry URLs with ids; the run journal has the details
            logger.warning("notification sync (%s) failed: %s",
                           "full" if key is FULL else "patient", type(exc).__name__)
        else:
            self.completed += 1
        finally:
            del self._running[key]
            if key in self._dirty:
                self._dirty.discard(key)
                if key is FULL or not self._full_will_start_later():
                    self._pending[key] = None
                else:
                    self.coalesced += 1
            self._pump()
            if not self._running and not self._pending:
                self._idle.set()

    async def join(self) -> None:
        """Until nothing is in flight or queued (a test and shutdown helper)."""
        await self._idle.wait()

    # -- shutdown ---------------------------------------------------------------------------

    async def close(self, grace: float | None = None) -> QueueStatus:
        """Start nothing new; give the runs in flight ``grace`` seconds, then cancel them."""
        self._closed = True
        grace = self.grace if grace is None else grace
        cancelled = 0
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            cancelled = len(late)
            await asyncio.gather(*late, return_exceptions=True)
        left = self.status()
        patients = left.queued - left.full_run_queued
        if cancelled or left.queued:
            logger.warning(
                "notification queue shut down with %d patient runs and %d full run not "
                "started, %d runs cancelled in flight: their changes are still above the "
                "watermark; the next full sync (bhi-fhir sync, or an empty notification) "
                "processes them", patients, int(left.full_run_queued), cancelled,
            )
        else:
            logger.info("notification queue shut down: nothing pending (%d runs completed, "
                        "%d failed)", self.completed, self.failed)
        return left
