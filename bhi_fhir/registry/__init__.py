"""The registry: its rows (one computation), its read from a FHIR server, and the read model
kept in the store."""

from bhi_fhir.registry.model import (
    Registry,
    build_registry,
    compute_rows,
    load_registry,
    refresh_patients,
    server_key,
)
from bhi_fhir.registry.rows import registry_row

__all__ = [
    "Registry",
    "build_registry",
    "compute_rows",
    "load_registry",
    "refresh_patients",
    "registry_row",
    "server_key",
]
