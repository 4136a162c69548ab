"""What a clinician reads when the EHR's FHIR server says no, and what the log keeps of it.

The server's own answer (an OperationOutcome's diagnostics, a status line with its internal URL)
is for the administrator, not for the clinician: the page says in the clinician's terms what
happened and what to do, the log says which kind of request failed how (method, resource type,
status, issue codes) — never ids, URLs, query values or diagnostics, which can carry PHI.

A 401 that survived one renewal (smart_app.tokens) ends the session instead of refusing.
"""

from __future__ import annotations

import logging

from bhi_fhir.fhir import (
    Conflict,
    FhirError,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    RetryableError,
    Unauthorized,
    Unprocessable,
)
from bhi_fhir.fhir.errors import BadRequest
from smart_app.deps import Refusal
from smart_app.tokens import SessionEnded

logger = logging.getLogger(__name__)

NOT_ALLOWED = (
    "The EHR did not allow this: the access granted to this sign-in does not cover it. "
    "Nothing was changed. Ask your EHR administrator for the access, then launch the app again."
)
NOT_FOUND = (
    "The EHR no longer has this record (it may have been removed or merged with another). "
    "Open the patient's chart in the EHR again."
)
CHANGED = (
    "Someone changed this record in the EHR in the meantime. Nothing was saved; reload the "
    "page to see the current record and try again."
)
NOT_ACCEPTED = (
    "The EHR did not accept this: it does not meet the EHR's rules for this record. Nothing "
    "was saved. If it keeps happening, ask your administrator (the app's log names the request)."
)
NO_ANSWER = "The EHR did not answer in time. Nothing was changed; try again in a moment."
UNREADABLE = (
    "The EHR answered in a way the app cannot read. Try again; if it keeps happening, ask your "
    "administrator."
)


def resource_type_of(path: str | None) -> str:
    """The first FHIR resource type (capitalised segment) of a request path, or ``(base)``."""
    for segment in (path or "").split("/"):
        if segment[:1].isupper():
            return segment
    return "(base)"


def ehr_refusal(title: str, exc: FhirError) -> Exception:
    """The exception to raise for ``exc``: a :class:`Refusal` with a clinician-level message,
    or :class:`SessionEnded` for a 401 that a renewed token did not cure."""
    codes = ",".join(
        str(issue.get("code"))
        for issue in (exc.outcome or {}).get("issue") or []
        if isinstance(issue, dict) and issue.get("code")
    )
    logger.warning(
        "the EHR refused %s %s: %s %s%s",
        exc.method or "?",
        resource_type_of(exc.path),
        exc.status or "-",
        type(exc).__name__,
        f" [{codes}]" if codes else "",
    )
    if isinstance(exc, Unauthorized):
        return SessionEnded("the FHIR server refused the renewed token (401)")
    if isinstance(exc, Forbidden):
        return Refusal(title, NOT_ALLOWED, 403)
    if isinstance(exc, NotFound | Gone):
        return Refusal(title, NOT_FOUND, 404)
    if isinstance(exc, PreconditionFailed | Conflict):
        return Refusal(title, CHANGED, 409)
    if isinstance(exc, Unprocessable | BadRequest):
        return Refusal(title, NOT_ACCEPTED, 502)
    if isinstance(exc, RetryableError):
        return Refusal(title, NO_ANSWER, 503)
    return Refusal(title, UNREADABLE, 502)
