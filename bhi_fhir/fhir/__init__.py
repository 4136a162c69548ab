"""FHIR I/O for bhi-fhir: an async client on httpx, SMART auth, the server profile, errors.

The pure core never imports this package; the sync, the app and the CLI do. The ``doctor``
command lives in ``bhi_fhir.fhir.doctor`` and is not imported here, so importing the client
does not pull in typer and rich.
"""

from bhi_fhir.fhir.auth import BackendServicesAuth, BearerAuth, NoAuth, load_private_key
from bhi_fhir.fhir.client import FHIR_JSON, FhirClient, Params, Resource, etag
from bhi_fhir.fhir.errors import (
    AuthError,
    BadRequest,
    Conflict,
    FatalError,
    FhirError,
    Forbidden,
    Gone,
    InvalidResponse,
    NotFound,
    PreconditionFailed,
    RequestTimeout,
    RetryableError,
    ServerError,
    TransportError,
    Unauthorized,
    Unprocessable,
    exit_code_for,
    outcome_message,
)
from bhi_fhir.fhir.profile import (
    READ_TYPES,
    WRITE_TYPES,
    Check,
    Readiness,
    ResourceSupport,
    ServerProfile,
    SmartInfo,
)

__all__ = [
    "FHIR_JSON",
    "READ_TYPES",
    "WRITE_TYPES",
    "AuthError",
    "BackendServicesAuth",
    "BadRequest",
    "BearerAuth",
    "Check",
    "Conflict",
    "FatalError",
    "FhirClient",
    "FhirError",
    "Forbidden",
    "Gone",
    "InvalidResponse",
    "NoAuth",
    "NotFound",
    "Params",
    "PreconditionFailed",
    "Readiness",
    "RequestTimeout",
    "Resource",
    "ResourceSupport",
    "RetryableError",
    "ServerError",
    "ServerProfile",
    "SmartInfo",
    "TransportError",
    "Unauthorized",
    "Unprocessable",
    "etag",
    "exit_code_for",
    "load_private_key",
    "outcome_message",
]
