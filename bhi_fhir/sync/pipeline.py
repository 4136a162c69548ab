"""How a sync run moves through its patients: groups read while earlier groups' transactions
are in flight, their plans packed into transactions of whole patients (:class:`Pipeline`), and
the plain cuts the run makes of a patient list (:func:`groups_of`, :func:`halves`,
:func:`write_chunks`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bhi_fhir.fhir import FhirError
from bhi_fhir.sync.planning import PatientPlan

__all__ = ["Pipeline", "PipelineRun", "groups_of", "halves", "write_chunks"]


class PipelineSettings(Protocol):
    max_entries: int
    group_size: int


class PipelineRun(Protocol):
    """What the pipeline needs of the sync run (the runner's run): read a group's plans,
    process (write) plans, and whether the run must stop."""

    stop: FhirError | None

    @property
    def config(self) -> PipelineSettings: ...

    async def read(self, patients: Sequence[str]) -> list[PatientPlan] | None: ...

    async def process(
        self, patients: Sequence[str], attempt: int = 0, plans: list[PatientPlan] | None = None
    ) -> None: ...


class Pipeline:
    """Groups read while earlier groups' transactions are in flight, their plans packed in
    order into transactions of whole patients across group boundaries.

    Cut per group, a group of ``group_size`` patients rarely fills its transactions exactly
    and ends in a small one (100 patients: 20 transactions for what fits in 18). So plans wait
    in one open transaction until the next patient would not fit (``max_entries`` writes,
    ``group_size`` patients), and the last open one is sent when no group is left. A lane
    reads its next group only while fewer transactions than the client sends at once are
    started and unanswered: the reads run ahead of the writes (the next group is read while
    this one's transactions are in flight) without reading the whole population first, and a
    worker sharing a batch claims no more than it can keep busy. A group is done
    (``on_done(claimed, planned)``) once every one of its plans was written or failed."""

    def __init__(
        self, run: PipelineRun, on_done: Callable[[Sequence[str], Sequence[str]], Awaitable[None]],
        *, lanes: int, in_flight: int,
    ) -> None:
        self.run, self.on_done = run, on_done
        self.lanes, self.in_flight = max(1, lanes), max(1, in_flight)
        self.open: list[tuple[PatientPlan, _Group]] = []  # the transaction being filled
        self.size = 0  # its entries
        self.writing = 0  # transactions started and not finished
        self.room = asyncio.Condition()
        self.tasks: set[asyncio.Task[None]] = set()

    async def drive(self, next_group: Callable[[], Awaitable[Sequence[str] | None]]) -> None:
        """Read, plan and write every group ``next_group`` gives (an empty one: no more)."""

        async def lane() -> None:
            while self.run.stop is None:
                async with self.room:
                    await self.room.wait_for(lambda: self.writing < self.in_flight)
                group = await next_group()
                if not group:
                    return
                await self._read(list(group))

        try:
            await asyncio.gather(*(lane() for _ in range(self.lanes)))
            self._send_open()
            while self.tasks:
                await asyncio.gather(*list(self.tasks))
        except BaseException:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
            raise

    async def _read(self, claimed: list[str]) -> None:
        plans = await self.run.read(claimed)
        if not plans:  # failed (recorded) or nothing to plan
            await self.on_done(claimed, [])
            return
        group = _Group(claimed, [plan.patient for plan in plans], len(plans))
        # At most max_entries writes (a patient with more alone) and group_size patients.
        limit, most = self.run.config.max_entries, max(1, self.run.config.group_size)
        for plan in plans:
            n = len(plan.writes) + len(plan.provenance)
            if self.open and (self.size + n > limit or len(self.open) >= most):
                self._send_open()
            self.open.append((plan, group))
            self.size += n
        if self.size >= limit or len(self.open) >= most:
            self._send_open()

    def _send_open(self) -> None:
        if not self.open:
            return
        chunk, self.open, self.size = self.open, [], 0
        self.writing += 1
        task = asyncio.create_task(self._write(chunk))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write(self, chunk: list[tuple[PatientPlan, _Group]]) -> None:
        try:
            plans = [plan for plan, _ in chunk]
            await self.run.process([plan.patient for plan in plans], 0, plans)
        finally:
            async with self.room:
                self.writing -= 1
                self.room.notify_all()
        for _, group in chunk:
            group.left -= 1
            if group.left == 0:
                await self.on_done(group.claimed, group.planned)


@dataclass(eq=False)
class _Group:
    claimed: list[str]  # the patients asked for (claimed from a shared batch)
    planned: list[str]  # one per plan (a replaced record is planned as its survivor)
    left: int  # plans not yet written or failed


def halves(patients: Sequence[str]) -> list[Sequence[str]]:
    if len(patients) <= 1:
        return [patients]
    half = len(patients) // 2
    return [patients[:half], patients[half:]]


def write_chunks(plans: Sequence[PatientPlan], max_entries: int) -> list[list[PatientPlan]]:
    """Consecutive runs of whole patients with at most ``max_entries`` writes (one may exceed)."""
    chunks: list[list[PatientPlan]] = []
    size = 0
    for plan in plans:
        n = len(plan.writes) + len(plan.provenance)
        if not chunks or (size + n > max_entries and size > 0):
            chunks.append([])
            size = 0
        chunks[-1].append(plan)
        size += n
    return chunks


def groups_of(patients: Sequence[str], size: int) -> list[Sequence[str]]:
    return [patients[i : i + size] for i in range(0, len(patients), max(1, size))]
