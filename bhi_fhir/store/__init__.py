"""Operational state: watermarks, the run journal and the audit of our writes (no PHI); and
the registry read model, a rebuildable cache of the EHR (``registry``: PHI, see there).

SQLite by default, PostgreSQL by URL (``--state-url`` / ``$BHI_STATE_URL``).
"""

from bhi_fhir.store._store import (
    STATE_URL_ENV,
    AuditRow,
    Store,
    StoreOpenError,
    default_state_url,
)
from bhi_fhir.store.models import PendingPatient, RunRecord, Watermark, WriteAudit
from bhi_fhir.store.registry import RegistryRecord, StoredRow  # creates its table too

__all__ = [
    "STATE_URL_ENV",
    "AuditRow",
    "PendingPatient",
    "RegistryRecord",
    "RunRecord",
    "Store",
    "StoreOpenError",
    "StoredRow",
    "Watermark",
    "WriteAudit",
    "default_state_url",
]
