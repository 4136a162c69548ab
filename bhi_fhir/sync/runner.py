"""One sync run: changed responses → per-patient plans → transaction Bundles → the journal.

Exactly once: every entry is a conditional create (business
identifier, or a Provenance tag) or a versioned update, so a retried, repeated or concurrent
Bundle never duplicates; the watermark moves only after the writes for everything below it
succeeded. A crash before that means the next run sees the same responses again, finds the
finished work on the server (unchanged) and completes the rest.

Patients are processed in groups (one batch read per group, then transactions of at most
``max_entries`` writes, whole patients each; a patient with more is cut into parts that
keep their ``urn:uuid`` references inside, ``chunks``), several groups at once. Each write is
counted by what it did on the server, also when a transaction's answer was lost
(``accounting``: this run's Provenance is searched before anything is counted or re-sent).
Small transactions are what makes HAPI fast: its cost per entry grows with the
transaction's size (Hibernate flushes and dirty-checks every entity of the transaction
before each of its searches), so 100-entry transactions ingest faster than 400-entry ones
at a few more requests.
A transaction that fails for one bad patient is split, so the others are still written; a
version clash (412/409: someone wrote in between) re-reads and re-plans.

Fail closed — a crisis write is never lost. Every failure is classified by cause
(``bhi_fhir.fhir.errors.failure_cause``):

* **authorization** (401/403, token refused) and **configuration** (not FHIR — a login page
  answering 200 text/html —, a transaction answer that does not account for every entry, a
  wrong URL, 501): nothing else can succeed either, so the run stops, the watermark stays;
* **transient** (5xx, network, timeouts whose outcome is unknown, clashes that keep clashing,
  a bare 400 without an OperationOutcome): the watermark is held below the patient's responses,
  so the next run reads them again;
* **refused** (400/422 with an OperationOutcome, isolated to one patient): the patient is
  held in the store's ``pending`` table — retried by later runs (incremental or notified) with
  a growing backoff until a run succeeds or an operator resolves it — and only then may the
  watermark pass their responses: the hold, committed first, is the record of the work.

Provenance rides in the same transaction as its targets (atomic: a Provenance exists iff
its write happened), conditional on its deterministic key (``_tag``), so a repeated or
concurrent transaction finds it instead of adding another.

Merged records (``planning.merge_contexts``): a replaced record is planned as its surviving
patient; a failure of the survivor's writes counts for every record folded into it (the
watermark holds below their responses, a hold or release names them too), and a re-plan reads
them again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhir import (
    Conflict,
    FatalError,
    FhirClient,
    FhirError,
    PreconditionFailed,
)
from bhi_fhir.fhir.errors import (
    CAUSE_AUTHORIZATION,
    CAUSE_CONFIGURATION,
    CAUSE_REFUSED,
    CAUSE_TRANSIENT,
    failure_cause,
    safe_reason,
)
from bhi_fhir.fhirjson import entry_answers
from bhi_fhir.fhirjson import instant as _instant  # a server's or stored instant
from bhi_fhir.paths import bundled_questionnaires, default_plan_path
from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from bhi_fhir.registry.model import refresh_after_sync
from bhi_fhir.store import AuditRow, Store
from bhi_fhir.sync.accounting import Ledger, mark_run, send_accounted
from bhi_fhir.sync.chunks import transaction_parts
from bhi_fhir.sync.pipeline import Pipeline, groups_of, halves, write_chunks
from bhi_fhir.sync.planning import (
    PatientContext,
    PatientPlan,
    SyncWrite,
    merge_contexts,
    plan_patient,
)
from bhi_fhir.sync.report import PatientDiff, Problem, RunReport
from bhi_fhir.sync.source import (
    Changed,
    ServerInfo,
    fetch_bulk,
    fetch_changed,
    fetch_contexts,
    fetch_info_with_changed,
    fetch_server_info,
)
from bhi_fhir.sync.workers import join_shared
from bhi_fhir.workflow import Protocol
from bhi_fhir.workflow.protocol import default_protocol

__all__ = ["DEFAULT_AGENT", "SyncConfig", "default_plan_path", "load_protocol_files", "run_sync"]

Resource = dict[str, Any]

# The service itself, as an identifier-only Device reference: no Device resource is needed
# on the server (servers enforcing referential integrity would refuse a dangling one).
DEFAULT_AGENT: Resource = {
    "type": "Device",
    "identifier": {"system": BHI_IDENTIFIER, "value": "bhi-fhir"},
    "display": "bhi-fhir sync",
}
_CLASH_RETRIES = 3
_WATERMARK_SAFETY = timedelta(seconds=30)  # writes still committing when the search ran
_STOP = (CAUSE_AUTHORIZATION, CAUSE_CONFIGURATION)  # causes that end the whole run


def load_protocol_files(root: Path | None = None) -> Protocol:
    """The shipped protocol, as ``apply`` and the app load it (one loader)."""
    return default_protocol(root)


@dataclass
class SyncConfig:
    server: str
    plan_path: Path = field(default_factory=default_plan_path)
    since: str | None = None
    dry_run: bool = False
    today: date | None = None
    state_url: str | None = None
    agent: Resource = field(default_factory=lambda: dict(DEFAULT_AGENT))
    where: Sequence[tuple[str, str]] = ()  # extra QuestionnaireResponse search parameters
    tags: Sequence[tuple[str, str]] = ()  # meta.tags put on everything written
    # One patient ("Patient/<id>"), e.g. from a Subscription notification: all of their
    # responses, and the watermark is neither read nor moved (it covers every patient).
    patient: str | None = None
    group_size: int = 25  # patients per batch read
    max_entries: int = 100  # writes per transaction (whole patients; see pipeline.write_chunks)
    workers: int = 4
    page_size: int = 200
    max_retries: int = 5
    timeout: float = 30
    auth: httpx.Auth | None = None
    transport: httpx.AsyncBaseTransport | None = None
    # A journal row still 'running' after this long belongs to a process that died.
    stale_run_after: timedelta = timedelta(hours=6)
    # Scale-out (bhi_fhir.sync.workers): split the run with the other workers sharing this
    # PostgreSQL store; a claim not renewed for ``lease_s`` is taken over by another worker.
    shared: bool = False
    lease_s: float = 120.0
    # First run over a population (no watermark yet): read it from a Bulk Data export into
    # this folder instead of searches (source.fetch_bulk); later runs search from its time.
    bulk: Path | None = None


class _Run:
    def __init__(
        self,
        config: SyncConfig,
        client: FhirClient,
        info: ServerInfo,
        changed: Changed,
        report: RunReport,
        store: Store,
        practice_plan: PracticePlan,
        protocol: Protocol,
        progress: Callable[[int], None] | None,
        planner: Executor | None = None,
    ) -> None:
        self.config, self.client, self.info, self.changed = config, client, info, changed
        self.planner = planner
        self.report, self.store = report, store
        self.practice_plan, self.protocol = practice_plan, protocol
        self.progress = progress
        self.today = config.today or practice_plan.today()  # the practice's day, billing.timezone
        # Provenance.recorded is an instant, not a day: UTC.
        self.recorded = datetime.now(UTC).isoformat(timespec="seconds")
        self.questionnaires = {**bundled_questionnaires(), **changed.questionnaires}
        self.failed_patients: set[str] = set()  # transient: hold the watermark below them
        self.pending: set[str] = set()  # held in the store when the run started
        self.succeeded: set[str] = set()  # every write done (or none needed)
        self.stop: FhirError | None = None  # authorization/configuration: end the run
        self.merged: dict[str, list[str]] = {}  # surviving patient → replaced records planned
        self.ledger = Ledger()  # what was counted; transactions of unknown outcome

    # --- planning -----------------------------------------------------------------------------

    async def plan_group(self, patients: Sequence[str]) -> list[PatientPlan]:
        contexts = await fetch_contexts(self.client, self.info, patients, self.changed)
        merged = merge_contexts(patients, contexts)
        # Planning is CPU work: on the run's one planning thread, so the event loop keeps
        # sending and answering the transactions already in flight meanwhile, and groups are
        # planned in the order they were read (the first group's writes go first).
        plans = await asyncio.get_running_loop().run_in_executor(
            self.planner, self._plan_all, merged)
        for plan in plans:
            if plan.merged:
                self.merged[plan.patient] = plan.merged
        return plans

    def _plan_all(self, contexts: Iterable[PatientContext]) -> list[PatientPlan]:
        return [
            plan_patient(
                ctx, protocol=self.protocol, practice_plan=self.practice_plan,
                today=self.today, recorded=self.recorded, agent=self.config.agent,
                questionnaires=self.questionnaires,
            )
            for ctx in contexts
        ]

    def _with_merged(self, patients: Sequence[str]) -> list[str]:
        """``patients`` and the replaced records planned as them."""
        return list(dict.fromkeys(
            r for p in patients for r in (p, *self.merged.get(p, ()))))

    # --- one group ----------------------------------------------------------------------------

    async def read(self, patients: Sequence[str]) -> list[PatientPlan] | None:
        """The group's plans, one per surviving patient; None when the run stopped or the read
        failed (recorded by cause)."""
        if self.stop is not None:
            self._tick(len(patients))
            return None
        try:
            plans = await self.plan_group(patients)
        except FhirError as err:
            self._fail(patients, "read", err)
            return None
        # One plan per surviving patient: count the records folded in as done here.
        self._tick(len(patients) - len(plans))
        return plans

    async def process(
        self, patients: Sequence[str], attempt: int = 0, plans: list[PatientPlan] | None = None
    ) -> None:
        if self.stop is not None:  # another group hit an authorization/configuration failure
            self._tick(len(patients))
            return
        if plans is None:
            plans = await self.read(patients)
            if plans is None:
                return
            patients = [plan.patient for plan in plans]
        if self.config.dry_run:
            for plan in plans:
                self._account(plan)
                self.report.diffs.append(PatientDiff(plan.patient, plan.changes))
            self._tick(len(patients))
            return
        chunks = write_chunks(plans, self.config.max_entries)
        if len(chunks) > 1:  # small transactions: HAPI's cost per entry grows with the size
            # Whole patients each, so independent: in flight together (as many at once as the
            # client allows, FhirClient max_concurrency), not one after another.
            await asyncio.gather(*(
                self.process([plan.patient for plan in chunk], attempt, chunk)
                for chunk in chunks))
            return
        entries, writes = self._entries(plans)
        if not entries:
            for plan in plans:
                self._account(plan)
            self.succeeded.update(self._with_merged(patients))
            self._tick(len(patients))
            return
        try:
            await self._write(writes)
        except (PreconditionFailed, Conflict) as err:
            # Someone else wrote one of these resources meanwhile: re-read and re-plan.
            if attempt >= _CLASH_RETRIES:
                self._fail(patients, "write", err)
                return
            await asyncio.sleep(0.2 * (attempt + 1))
            for part in halves(self._with_merged(patients)):
                await self.process(part, attempt + 1)
            return
        except FhirError as err:
            isolate = isinstance(err, FatalError) and failure_cause(err) not in _STOP
            if isolate and len(patients) > 1:  # find the patient the server refuses
                half = len(patients) // 2
                await self.process(patients[:half], attempt, plans[:half])
                await self.process(patients[half:], attempt, plans[half:])
                return
            self._fail(patients, "write", err)
            return
        for plan in plans:
            self._account(plan)
        self.succeeded.update(self._with_merged(patients))
        self._tick(len(patients))

    def _fail(self, patients: Sequence[str], stage: str, err: FhirError) -> None:
        """Record a failure by cause: stop the run, hold the watermark, or hold the patient."""
        cause = failure_cause(err)
        if cause in _STOP:
            if self.stop is None:
                self.stop = err
            self._tick(len(patients))
            return
        message = f"{type(err).__name__}: {err.message}"
        for patient in self._with_merged(patients):
            self.report.problems.append(
                Problem(patient, stage, message, cause == CAUSE_TRANSIENT, cause)
            )
            if cause == CAUSE_TRANSIENT:
                self.failed_patients.add(patient)
            if cause == CAUSE_REFUSED or patient in self.pending:
                # Committed before the watermark can move past the patient's responses.
                self.store.hold_patient(self.config.server.rstrip("/"), patient, cause=cause,
                                        reason=safe_reason(err), run_id=self.report.run_id)
        self._tick(len(patients))

    def _tick(self, n: int) -> None:
        if self.progress is not None:
            self.progress(n)

    def _account(self, plan: PatientPlan) -> None:
        self.report.count_changes(plan.changes)
        self.report.unrecognised += plan.unrecognised
        self.report.future_dated += plan.future_dated
        self.report.before_backfill += plan.before_backfill
        for message in plan.errors:
            self.report.problems.append(Problem(plan.patient, "plan", message))

    # --- the Bundle ---------------------------------------------------------------------------

    def _entries(self, plans: Iterable[PatientPlan]) -> tuple[list[Resource], list[SyncWrite]]:
        profile = self.info.profile
        writes: list[SyncWrite] = []
        for plan in plans:
            refused: set[str] = set()
            kept: list[SyncWrite] = []
            for write in plan.writes:
                allowed = (
                    profile.can_write(write.resource_type)
                    if write.method == "create"
                    else profile.supports(write.resource_type, "update")
                )
                if allowed:
                    kept.append(write)
                else:
                    refused.add(write.full_url)
                    self.report.problems.append(
                        Problem(write.resource_type, "refused",
                                f"{write.method} of {write.identifier} ({write.rule}): the server "
                                f"does not allow {write.method} on {write.resource_type}")
                    )
            if refused:
                for write in kept:
                    _scrub(write.resource, refused)
            writes += kept
            if profile.can_write("Provenance"):
                for prov in plan.provenance:
                    if refused:
                        _scrub(prov.resource, refused)
                    if prov.resource.get("target"):
                        writes.append(prov)
            elif plan.provenance:
                self.report.problems.append(
                    Problem("Provenance", "refused",
                            f"{len(plan.provenance)} Provenance not written: the server does "
                            "not allow create on Provenance")
                )
        tag_writes(writes, self.config.tags)
        return [w.entry() for w in writes], writes

    async def _write(self, writes: Sequence[SyncWrite]) -> None:
        """``writes`` as transactions of at most ``max_entries`` entries, references kept
        within each (``chunks``), in order; each counted by what it did on the server, also
        when its answer was lost (``accounting``), and journaled as it commits. A failing part
        raises: the parts before it stay written and counted, a re-plan finds them."""
        mark_run(writes, self.report.run_id)
        for part in transaction_parts(writes, self.config.max_entries):
            response, outcomes = await send_accounted(
                self.client, part, self.report.run_id, max_resends=self.config.max_retries,
                ledger=self.ledger)
            self._record(part, response, outcomes)

    async def settle(self) -> None:
        """Count what the transactions of unknown outcome wrote after all (``Ledger``)."""
        try:
            settled = await self.ledger.settle(self.client, self.report.run_id)
        except FhirError:  # cannot tell now: a later run finds them on file
            return
        for writes, outcomes in settled:
            self._record(writes, None, outcomes)

    def _record(self, writes: Sequence[SyncWrite], response: Resource | None,
                outcomes: Sequence[str]) -> None:
        rows: list[AuditRow] = []
        answers = entry_answers(response or {})
        for i, (write, outcome) in enumerate(zip(writes, outcomes, strict=True)):
            location = answers[i].location if i < len(answers) else None
            if write.resource_type == "Provenance":
                self.report.provenance[outcome] += 1
            else:
                self.report.written[outcome] += 1
            rows.append(AuditRow(write.rule, write.identifier, write.method, outcome,
                                 str(location) if location else None))
        self.store.record_writes(self.report.run_id, self.config.server, rows)

    # --- the watermark ------------------------------------------------------------------------

    def next_watermark(self) -> str | None:
        """Where the next run starts: past everything written, not past anything that failed."""
        changed = [*self.changed.responses, *self.changed.observations]  # screens either way
        if not changed or self.changed.last_updated is None:
            return None
        candidate = _instant(self.changed.last_updated)
        if self.changed.server_time:
            candidate = min(candidate, _instant(self.changed.server_time) - _WATERMARK_SAFETY)
        for qr in changed:
            if qr["subject"]["reference"] in self.failed_patients:
                updated = (qr.get("meta") or {}).get("lastUpdated")
                if isinstance(updated, str):
                    candidate = min(candidate, _instant(updated))
        if self.config.since and candidate <= _instant(self.config.since):
            return None
        return candidate.isoformat().replace("+00:00", "Z")


def _points_to(item: Any, refused: set[str]) -> bool:
    """A Reference (or CarePlan.activity's ``{reference: Reference}``) to a refused write."""
    if not isinstance(item, dict):
        return False
    ref = item.get("reference")
    if isinstance(ref, dict):
        ref = ref.get("reference")
    return isinstance(ref, str) and ref in refused


def _scrub(value: Any, refused: set[str]) -> None:
    """Remove references to resources that will not be written (in place)."""
    if isinstance(value, dict):
        for key in list(value):
            if _points_to(value[key], refused):
                del value[key]
            else:
                _scrub(value[key], refused)
    elif isinstance(value, list):
        value[:] = [v for v in value if not _points_to(v, refused)]
        for v in value:
            _scrub(v, refused)


def tag_writes(writes: Sequence[SyncWrite], tags: Sequence[tuple[str, str]]) -> None:
    """Put each ``(system, code)`` meta.tag on every write's resource, once."""
    for system, code in tags:
        for write in writes:
            present = write.resource.setdefault("meta", {}).setdefault("tag", [])
            if not any(t.get("system") == system and t.get("code") == code for t in present):
                present.append({"system": system, "code": code})


async def run_sync(
    config: SyncConfig,
    *,
    store: Store | None = None,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Run one sync; never raises for a single bad resource or patient (see the report)."""
    started = time.monotonic()
    own_store = store is None
    store = store or Store.open(config.state_url)
    server = config.server.rstrip("/")
    since = config.since or (None if config.patient else store.watermark(server))
    shared = join_shared(store, server, config.lease_s) if config.shared else None
    if shared is not None:  # every worker of the batch searches from the batch's watermark
        since = shared.since
    store.mark_stale_runs(config.stale_run_after, server=server)
    run_id = store.start_run(server, dry_run=config.dry_run, since=since)
    report = RunReport(run_id, server, config.dry_run, since)
    config.since = since
    client = FhirClient(server, auth=config.auth, timeout=config.timeout,
                        max_retries=config.max_retries, transport=config.transport)
    planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bhi-sync-plan")
    try:
        practice_plan = load_practice_plan(config.plan_path)
        # The shipped protocol (a few hundred ms of parsing) is loaded while the first
        # requests are out, not before them.
        loading = asyncio.ensure_future(asyncio.to_thread(load_protocol_files))
        where = list(config.where)
        if config.patient:
            where.append(("subject", config.patient))
        bulk = config.bulk is not None and since is None and not config.patient
        changed: Changed | None = None
        try:
            if bulk:
                info = await fetch_server_info(client)
            else:  # the CapabilityStatement read while the search runs, not before it
                info, changed = await fetch_info_with_changed(client, since, where=where,
                                                              page_size=config.page_size)
        except BaseException:
            await asyncio.gather(loading, return_exceptions=True)
            raise
        protocol = await loading
        readiness = info.profile.readiness()
        if not readiness.can_run:
            raise FatalError(readiness.summary)
        if bulk:
            assert config.bulk is not None
            changed = await fetch_bulk(client, info, config.bulk, where=where)
        elif changed is None:  # the server is not as the search assumed: search as it says
            changed = await fetch_changed(client, info, since, where=where,
                                          page_size=config.page_size)
        report.responses = len(changed.responses)
        for message in changed.invalid:
            report.problems.append(Problem(message.split(":", 1)[0], "read", message))
        patients = changed.patients_changed  # of changed responses and screening Observations
        due = [] if config.dry_run else store.due_patients(server)
        patients = list(dict.fromkeys([*patients, *due]))  # held patients due for a retry
        report.patients = len(patients)
        if on_start is not None:
            on_start(len(patients))
        run = _Run(config, client, info, changed, report, store, practice_plan, protocol,
                   progress, planner)
        run.pending = set(due)

        def pipeline(finish: Callable[[Sequence[str]], Awaitable[None]] | None) -> Pipeline:
            async def done(claimed: Sequence[str], planned: Sequence[str]) -> None:
                # The registry read model: the rows of the patients just written for.
                written = [p for p in dict.fromkeys([*claimed, *run._with_merged(planned)])
                           if p in run.succeeded]
                await refresh_after_sync(store, server, client, written, today=run.today,
                                         plan=practice_plan, dry_run=config.dry_run)
                if finish is not None:
                    await finish(claimed)

            return Pipeline(run, done, lanes=config.workers, in_flight=client.max_concurrency)

        if shared is not None:  # claim groups from the queue the workers share
            await shared.work(run, patients, lambda claim, finish: pipeline(finish).drive(claim),
                              group_size=config.group_size)
        else:
            groups = iter(groups_of(patients, config.group_size))

            async def next_group() -> Sequence[str] | None:
                return next(groups, None)

            await pipeline(None).drive(next_group)
        if not config.dry_run:
            await run.settle()
        if run.stop is not None:
            raise run.stop
        if not config.dry_run:
            store.release_patients(server, run.succeeded & run.pending)
        if not config.dry_run and not config.patient:
            moved = shared.close(run) if shared is not None else run.next_watermark()
            report.watermark = (
                store.advance_watermark(server, moved, run_id=run_id) if moved else since
            )
        else:
            report.watermark = since
        report.status = "partial" if report.errors else "ok"
    except FhirError as err:
        report.status = "failed"
        cause = failure_cause(err)
        report.problems.append(Problem("run", "run", f"{type(err).__name__}: {err.message}",
                                       cause == CAUSE_TRANSIENT, cause))
        report.watermark = since
    except (OSError, ValueError) as err:  # plan file, protocol
        report.status = "failed"
        report.problems.append(Problem("run", "run", f"{type(err).__name__}: {err}"))
        report.watermark = since
    finally:
        if report.status == "running":  # an unexpected exception (or cancellation) ends it
            report.status = "failed"
            report.problems.append(Problem("run", "run", "the run ended unexpectedly"))
            report.watermark = since
        report.requests = client.request_count
        planner.shutdown(wait=False, cancel_futures=True)
        await client.aclose()
        report.duration_s = time.monotonic() - started
        report.pending = Counter(p.cause for p in store.pending(server))
        store.finish_run(
            run_id,
            status=report.status,
            counts={"actions": {r: dict(c) for r, c in report.planned.items()},
                    "written": dict(report.written), "provenance": dict(report.provenance),
                    "responses": report.responses, "patients": report.patients,
                    "failuresByCause": dict(report.causes()),
                    "pending": dict(report.pending)},
            errors=[{"subject": p.subject, "stage": p.stage, "message": p.message,
                     "cause": p.cause} for p in report.problems],
            request_count=report.requests,
            watermark=report.watermark,
        )
        if own_store:
            store.close()
    return report
