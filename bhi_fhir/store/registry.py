"""The registry read model's table: one computed row per enrolled patient and server.

Unlike the rest of the store this table holds clinical summary data (the patient's name,
scores, flags: PHI). It is a derived, rebuildable cache of the EHR — never the only copy of
anything — computed by ``bhi_fhir.registry.rows.registry_row`` and written by
``bhi_fhir.registry.model``. Each row keeps when its record was read (``read_at``, an instant)
and for which practice day it was computed (``day``: weeks in treatment, days without contact
and this month's minutes are as of that day).

A write never replaces a row read later than itself: two refreshes finishing out of order (a
sync and the app's own write, say) leave the newer read in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, DateTime, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from bhi_fhir.store._store import Store
from bhi_fhir.store.models import Base

__all__ = [
    "REGISTRY_BUILT",
    "RegistryRecord",
    "StoredRow",
    "delete_registry_rows",
    "put_registry_rows",
    "read_registry",
    "registry_built_at",
]

# The watermark stream recording when the whole registry was last built from the EHR.
REGISTRY_BUILT = "registry-built"


class RegistryRecord(Base):
    __tablename__ = "registry_rows"

    server: Mapped[str] = mapped_column(String(500), primary_key=True)
    patient: Mapped[str] = mapped_column(String(200), primary_key=True)  # the Patient's id
    row: Mapped[dict[str, Any]] = mapped_column(JSON)
    day: Mapped[str] = mapped_column(String(10))  # the practice's day it was computed for
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the EHR was read
    source: Mapped[str] = mapped_column(String(20))  # build | sync | notification | app | refresh


@dataclass(frozen=True, slots=True)
class StoredRow:
    patient: str
    row: dict[str, Any]
    day: str
    read_at: datetime
    source: str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite drops the zone


def put_registry_rows(
    store: Store,
    server: str,
    rows: Mapping[str, Mapping[str, Any]],
    *,
    day: str,
    read_at: datetime,
    source: str,
) -> None:
    """Insert or replace the rows (by patient id), unless the stored row was read later."""
    if not rows:
        return
    values = [
        {"server": server, "patient": patient, "row": dict(row), "day": day, "read_at": read_at,
         "source": source}
        for patient, row in rows.items()
    ]
    with store._session() as session, session.begin():
        dialect = session.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(RegistryRecord)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["server", "patient"],
                    set_={k: statement.excluded[k] for k in ("row", "day", "read_at", "source")},
                    where=RegistryRecord.read_at <= statement.excluded.read_at,
                ),
                values,
            )
            return
        for patient, row in rows.items():  # other dialects: read, compare, write
            current = session.get(RegistryRecord, (server, patient), with_for_update=True)
            if current is None:
                session.add(RegistryRecord(server=server, patient=patient, row=dict(row),
                                           day=day, read_at=read_at, source=source))
            elif _aware(current.read_at) <= read_at:
                current.row, current.day = dict(row), day
                current.read_at, current.source = read_at, source


def delete_registry_rows(
    store: Store, server: str, patients: Iterable[str], *, read_before: datetime | None = None
) -> int:
    """Remove patients from the registry (no longer enrolled, or gone from the server);
    with ``read_before``, only rows read before that instant. Returns how many."""
    wanted = list(patients)
    if not wanted:
        return 0
    statement = delete(RegistryRecord).where(
        RegistryRecord.server == server, RegistryRecord.patient.in_(wanted))
    if read_before is not None:
        statement = statement.where(RegistryRecord.read_at <= read_before)
    with store._session() as session, session.begin():
        result = cast("CursorResult[Any]", session.execute(statement))
        return int(result.rowcount or 0)


def read_registry(store: Store, server: str) -> list[StoredRow]:
    """Every stored row of ``server``."""
    # Columns, not ORM objects: a caseload of 1,000 rows is read on every page view.
    query = select(RegistryRecord.patient, RegistryRecord.row, RegistryRecord.day,
                   RegistryRecord.read_at, RegistryRecord.source
                   ).where(RegistryRecord.server == server)
    with store.engine.connect() as connection:
        return [
            StoredRow(patient, row, day, _aware(read_at), source)
            for patient, row, day, read_at, source in connection.execute(query)
        ]


def registry_built_at(store: Store, server: str) -> str | None:
    """When the whole registry of ``server`` was last built from the EHR (a FHIR instant)."""
    return store.watermark(server, REGISTRY_BUILT)
