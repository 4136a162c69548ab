"""Operational state: watermarks, the run journal and the audit of our writes (no PHI).

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

__all__ = [
    "STATE_URL_ENV",
    "AuditRow",
    "PendingPatient",
    "RunRecord",
    "Store",
    "StoreOpenError",
    "Watermark",
    "WriteAudit",
    "default_state_url",
]
