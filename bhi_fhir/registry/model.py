"""The registry read model: rows computed once per change, kept in the store, read by the page.

The live registry reads every enrolled patient's whole record on each view (a few batch
requests per 50 patients, then the timeline and the billing ledger per patient). The read model
computes the same rows (``rows.registry_row``, the one computation) when a record changes and
keeps them in the store (``bhi_fhir.store.registry``), so a view is one database read.

Who refreshes which rows (each re-reads the patients' records from the EHR after its writes,
so the row is what the live read would show):

* ``sync``: each patient it wrote for (or planned with nothing to write), after the writes;
* the notification receiver: through the sync run it starts;
* the app: the patient after each of its own writes (time, consent, task, applied plan), and
  one patient on demand (the page's refresh button);
* :func:`build_registry`: the whole registry from the EHR (the live read once), the first time
  the page finds no rows and on demand.

A patient no longer enrolled (or gone from the server) loses the row. Rows computed for an
earlier practice day are shown with their day (weeks, days without contact and this month's
minutes are as of then) until the next refresh or build.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bhi_fhir.fhir import FhirClient, FhirError
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry.reader import enrolled_ids, read_records
from bhi_fhir.registry.rows import enrolled_in, malformed_row, registry_row
from bhi_fhir.store import Store
from bhi_fhir.store.registry import (
    REGISTRY_BUILT,
    StoredRow,
    delete_registry_rows,
    put_registry_rows,
    read_registry,
    registry_built_at,
)
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule

__all__ = [
    "EnrolledReader",
    "RecordsReader",
    "Registry",
    "build_registry",
    "compute_rows",
    "enrollment_rule_of",
    "load_registry",
    "refresh_after_sync",
    "refresh_patients",
    "registry_in_use",
    "server_key",
]

logger = logging.getLogger(__name__)

# Many patients' records at once (the Patient first): ``read_records`` on a client, or the
# app's ``ClinicSource.patients_resources``.
RecordsReader = Callable[[list[str]], Awaitable[Mapping[str, list[Resource]]]]
EnrolledReader = Callable[[EnrollmentRule], Awaitable[list[str]]]


def _records_reader(read: FhirClient | RecordsReader) -> RecordsReader:
    if isinstance(read, FhirClient):
        client = read
        return lambda ids: read_records(client, ids)
    return read


def server_key(base_url: str) -> str:
    """The FHIR base as the store keys it (sync's ``--server``, the app's ``iss``)."""
    return base_url.rstrip("/")


def enrollment_rule_of(plan: PracticePlan | None) -> EnrollmentRule:
    if plan is None:
        return OWN_ENROLLMENT
    from bhi_fhir.workflow.plan_settings import enrollment_rule

    return enrollment_rule(plan)


def _unreadable(exc: Exception) -> None:
    """Log a record that could not be computed: the error type and where, never its data."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    logger.warning("registry: a patient's record could not be read (%s at %s)",
                   type(exc).__name__, where)


def compute_rows(
    records: Mapping[str, list[Resource]],
    today: date,
    plan: PracticePlan | None,
    on_error: Callable[[Exception], None] = _unreadable,
) -> dict[str, dict[str, Any]]:
    """Each patient's row; a record that cannot be computed is listed flagged (malformed), so
    one bad record never costs the others theirs."""
    rows: dict[str, dict[str, Any]] = {}
    for patient_id, resources in records.items():
        try:
            rows[patient_id] = registry_row(resources, today, plan)
        except Exception as exc:  # this patient's record only: the registry is everyone's
            on_error(exc)
            rows[patient_id] = malformed_row(patient_id)
    return rows


def _now() -> datetime:
    return datetime.now(UTC)


async def refresh_patients(
    store: Store,
    server: str,
    read: FhirClient | RecordsReader,
    patient_ids: Iterable[str],
    *,
    today: date,
    plan: PracticePlan | None,
    source: str,
) -> dict[str, dict[str, Any] | None]:
    """Re-read these patients' records and store their rows (one batch per 50 patients); a
    patient not enrolled (or not on the server) loses the row. Returns each patient's row, or
    None where removed. Ids may be given as ``Patient/<id>``."""
    ids = list(dict.fromkeys(p.removeprefix("Patient/") for p in patient_ids))
    if not ids:
        return {}
    read_at = _now()
    records = await _records_reader(read)(ids)
    rule = enrollment_rule_of(plan)
    enrolled = {i: r for i, r in records.items() if enrolled_in(r, rule)}
    rows = compute_rows(enrolled, today, plan)
    key = server_key(server)
    put_registry_rows(store, key, rows, day=today.isoformat(), read_at=read_at, source=source)
    gone = [i for i in ids if i not in rows]
    delete_registry_rows(store, key, gone, read_before=read_at)
    return {i: rows.get(i) for i in ids}


async def build_registry(
    store: Store,
    server: str,
    read: FhirClient | RecordsReader,
    *,
    today: date,
    plan: PracticePlan | None,
    enrolled: EnrolledReader | None = None,
) -> dict[str, dict[str, Any]]:
    """The whole registry from the EHR (the live read, once): every enrolled patient's row
    stored, rows of patients no longer enrolled removed, and the build's time recorded."""
    read_at = _now()
    rule = enrollment_rule_of(plan)
    if enrolled is not None:
        ids = await enrolled(rule)
    elif isinstance(read, FhirClient):
        ids = await enrolled_ids(read, rule)
    else:
        raise TypeError("build_registry needs a FhirClient or an enrolled-patients reader")
    rows = compute_rows(await _records_reader(read)(ids), today, plan)
    key = server_key(server)
    put_registry_rows(store, key, rows, day=today.isoformat(), read_at=read_at, source="build")
    stale = [r.patient for r in read_registry(store, key) if r.patient not in rows]
    delete_registry_rows(store, key, stale, read_before=read_at)
    store.advance_watermark(key, read_at.isoformat().replace("+00:00", "Z"),
                            stream=REGISTRY_BUILT, run_id=None)
    return rows


def registry_in_use(store: Store, server: str) -> bool:
    """Whether the read model of ``server`` exists (built once, by the page's first view or on
    demand): until then refreshes are skipped — the first build reads everyone anyway."""
    return registry_built_at(store, server_key(server)) is not None


async def refresh_after_sync(
    store: Store,
    server: str,
    client: FhirClient,
    patients: Iterable[str],
    *,
    today: date,
    plan: PracticePlan | None,
    dry_run: bool = False,
) -> None:
    """``sync``'s call after a group's writes: the rows of the patients it wrote for (or found
    nothing to write for) read again, when the registry is in use. One more batch per group;
    a failure leaves the older rows (their time is shown) and never fails the sync."""
    wanted = list(patients)
    if dry_run or not wanted or not registry_in_use(store, server):
        return
    try:
        await refresh_patients(store, server, client, wanted, today=today, plan=plan,
                               source="sync")
    except FhirError as exc:
        logger.warning("registry: %d rows not refreshed after the sync's writes (%s)",
                       len(wanted), type(exc).__name__)


@dataclass(frozen=True)
class Registry:
    """What the page shows from the store: the rows, each with when it was read and for which
    day, and the whole registry's freshness."""

    rows: list[dict[str, Any]]
    built_at: str | None  # when the whole registry was last built from the EHR
    oldest_read: datetime | None  # the least fresh row: the registry is as of then
    newest_read: datetime | None
    earlier_day: int  # rows computed for an earlier practice day than today


def load_registry(store: Store, server: str, today: date) -> Registry:
    """The stored rows of ``server``; each row gains ``read_at`` (ISO instant), ``day`` and
    ``source`` keys for the page's per-row freshness."""
    stored: list[StoredRow] = read_registry(store, server_key(server))
    rows = [
        {**s.row, "read_at": s.read_at.isoformat(timespec="seconds"), "day": s.day,
         "refreshed_by": s.source}
        for s in stored
    ]
    reads = [s.read_at for s in stored]
    return Registry(
        rows=rows,
        built_at=registry_built_at(store, server_key(server)),
        oldest_read=min(reads) if reads else None,
        newest_read=max(reads) if reads else None,
        earlier_day=sum(1 for s in stored if s.day < today.isoformat()),
    )
