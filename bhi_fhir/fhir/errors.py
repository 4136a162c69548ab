"""Every way talking to a FHIR server can fail, as one exception tree.

Retry is decided by the *type*: callers (and the client's own retry loop) catch
``RetryableError`` to try again later and let ``FatalError`` stop the work.

::

    FhirError                      status, outcome (OperationOutcome dict), method, path
    ├── RetryableError             408, 429, 500, 502, 503, 504 — the server may recover
    │   ├── TransportError         connection refused/reset, DNS, protocol errors
    │   └── RequestTimeout         no answer within the client's timeout
    └── FatalError                 retrying the same request will not help
        ├── BadRequest             400 (and other unmapped 4xx)
        │   └── Unprocessable      422 — the server understood but rejected the content
        ├── Unauthorized           401 (after one re-authentication)
        ├── Forbidden              403 — the token lacks a scope
        ├── NotFound               404
        ├── Gone                   410 — the resource was deleted
        ├── Conflict               409
        ├── PreconditionFailed     412 — stale If-Match / ambiguous conditional write
        ├── InvalidResponse        malformed JSON or a body of the wrong shape
        ├── AuthError              discovery or token endpoint refused us (OAuth error)
        │   └── ScopeRefused       the token endpoint refused the scopes asked for (invalid_scope)
        ├── Unsupported            the server does not offer the operation (Bulk Data $export)
        └── ServerError            any other 5xx (e.g. 501 Not Implemented)

The message a person reads is dug out of the response: OperationOutcome issues
(severity, code, expression, details.text, diagnostics) or the OAuth
``error_description``. Messages never contain request bodies or query values, which may
carry PHI. ``exit_code_for`` is the one place that maps the tree to CLI exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from bhi_fhir.exit_codes import (  # noqa: F401  (re-exported: errors.EXIT_* for callers)
    EXIT_CONFIG,
    EXIT_DATAERR,
    EXIT_FAILURE,
    EXIT_NOINPUT,
    EXIT_NOPERM,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_TEMPFAIL,
    EXIT_UNAVAILABLE,
)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class FhirError(Exception):
    """Root of the tree; carries what a caller needs to decide and to report."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        outcome: dict[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.outcome = outcome
        self.method = method
        self.path = path
        # Seconds the server asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after
        # False when we know the server never saw the request (connect failed), which makes
        # even a non-idempotent request safe to repeat.
        self.request_sent = request_sent

    @property
    def exit_code(self) -> int:
        """The CLI exit code of this failure (:func:`exit_code_for`)."""
        return exit_code_for(self)

    def __str__(self) -> str:
        return self.message


class RetryableError(FhirError):
    """Trying again later may succeed (overload, gateway trouble, flaky network)."""


class TransportError(RetryableError):
    """No HTTP response at all: refused, reset, DNS, broken protocol."""


class RequestTimeout(RetryableError):
    """The server did not answer within the client's timeout."""


class FatalError(FhirError):
    """Retrying the same request cannot help; a person or the caller must act."""


class BadRequest(FatalError):
    """400: the server rejected the request (syntax, unknown search parameter, ...)."""


class Unprocessable(BadRequest):
    """422: well-formed but violates the server's business rules or profiles."""


class Unauthorized(FatalError):
    """401 even after re-authenticating once."""


class Forbidden(FatalError):
    """403: authenticated, but not allowed (missing scope, policy)."""


class NotFound(FatalError):
    """404: unknown resource, type or endpoint."""


class Gone(FatalError):
    """410: the resource existed and was deleted."""


class Conflict(FatalError):
    """409: the write collides with the server's current state."""


class PreconditionFailed(FatalError):
    """412: If-Match was stale, or a conditional write matched more than one resource."""


class InvalidResponse(FatalError):
    """The server answered, but not with the FHIR JSON we can read."""


class AuthError(FatalError):
    """SMART discovery or the token endpoint refused us; the OAuth message says why."""


class ScopeRefused(AuthError):
    """The token endpoint answered ``invalid_scope`` (RFC 6749 §5.2): the scopes asked for
    are more than the client is registered for. Which scopes to ask for is configuration
    (``--scope``, or the client's registration), so asking again cannot help."""


class Unsupported(FatalError):
    """The server does not offer an operation a command needs (Bulk Data ``$export``): its
    CapabilityStatement lacks it, or the request was answered 404, 405 or 501."""


class ServerError(FatalError):
    """A 5xx that is not worth retrying (501 Not Implemented, 505, ...)."""


_STATUS_CLASSES: dict[int, type[FhirError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    422: Unprocessable,
}


def error_class_for_status(status: int) -> type[FhirError]:
    """The exception type for an HTTP error status (the single retry decision)."""
    if status in RETRYABLE_STATUSES:
        return RetryableError
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return BadRequest


def outcome_message(outcome: Mapping[str, Any]) -> str:
    """Render an OperationOutcome as one line a person can act on.

    Each issue becomes ``severity [code] expression: text (diagnostics)``; issues are
    joined with ``; ``. Unknown shapes degrade to what is present instead of failing.
    """
    parts: list[str] = []
    issues = outcome.get("issue")
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        words = [str(issue.get("severity") or "")]
        if issue.get("code"):
            words.append(f"[{issue['code']}]")
        where = issue.get("expression") or issue.get("location")
        if isinstance(where, list) and where:
            words.append(", ".join(str(w) for w in where))
        head = " ".join(w for w in words if w)
        details = issue.get("details")
        text = details.get("text") if isinstance(details, dict) else None
        diagnostics = issue.get("diagnostics")
        body = text or diagnostics or ""
        if text and diagnostics and diagnostics != text:
            body = f"{text} ({diagnostics})"
        parts.append(f"{head}: {body}" if body else head)
    return "; ".join(p for p in parts if p)


def oauth_message(body: Mapping[str, Any]) -> str:
    """Render an OAuth 2 error response (RFC 6749 §5.2) as one line."""
    error = body.get("error")
    description = body.get("error_description")
    if error and description:
        return f"{error}: {description}"
    if description or error:
        return str(description or error)
    if body.get("error_uri"):
        return f"see {body['error_uri']}"
    return ""


def _body_as_dict(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def describe_body(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    """(message, OperationOutcome or None) for an error response body."""
    body = _body_as_dict(response)
    if body is None:
        return response.reason_phrase or "", None
    if body.get("resourceType") == "OperationOutcome":
        return outcome_message(body) or response.reason_phrase, body
    return oauth_message(body) or response.reason_phrase, None


def error_from_response(
    response: httpx.Response,
    *,
    retry_after: float | None = None,
    cls: type[FhirError] | None = None,
) -> FhirError:
    """Build the right exception for a non-2xx response (never includes the query)."""
    message, outcome = describe_body(response)
    method = response.request.method
    path = response.request.url.path
    error_cls = cls or error_class_for_status(response.status_code)
    return error_cls(
        f"{method} {path} → {response.status_code} {message}".rstrip(),
        status=response.status_code,
        outcome=outcome,
        method=method,
        path=path,
        retry_after=retry_after,
    )


def error_from_transport(exc: httpx.TransportError, request: httpx.Request) -> FhirError:
    """Wrap an httpx transport failure (no response) in our tree."""
    method, path = request.method, request.url.path
    kind = type(exc).__name__
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(
            f"{method} {path}: timed out ({kind})", method=method, path=path, request_sent=sent
        )
    return TransportError(
        f"{method} {path}: no response from {request.url.scheme}://"
        f"{request.url.netloc.decode()} ({kind})",
        method=method,
        path=path,
        request_sent=sent,
    )


# What a failure says about the work, for the sync's decisions and reports:
CAUSE_AUTHORIZATION = "authorization"  # 401/403, token endpoint: nothing will succeed; stop
CAUSE_CONFIGURATION = "configuration"  # wrong URL, not FHIR (a login page), 501: stop
CAUSE_REFUSED = "refused"  # 400/422 with an OperationOutcome: this resource, not the server
CAUSE_TRANSIENT = "transient"  # overload, network, timeouts, version clashes: try again later
CAUSES = (CAUSE_AUTHORIZATION, CAUSE_CONFIGURATION, CAUSE_REFUSED, CAUSE_TRANSIENT)


def failure_cause(err: FhirError) -> str:
    """Why a request failed, as one of :data:`CAUSES`.

    Only a 400/422 carrying an OperationOutcome is a refusal of the content sent: a bare 400
    (a proxy's page, say) proves nothing about the resource and counts as transient, so the
    work is kept for a later attempt rather than given up.
    """
    if isinstance(err, ScopeRefused):
        return CAUSE_CONFIGURATION
    if isinstance(err, Unauthorized | Forbidden | AuthError):
        return CAUSE_AUTHORIZATION
    if isinstance(err, BadRequest):
        return CAUSE_REFUSED if err.outcome is not None else CAUSE_TRANSIENT
    if isinstance(err, RetryableError | Conflict | PreconditionFailed):
        return CAUSE_TRANSIENT
    return CAUSE_CONFIGURATION  # InvalidResponse, NotFound, Gone, ServerError, others


def safe_reason(err: FhirError) -> str:
    """A reason to keep in the operational store: type, status and the OperationOutcome's
    issue codes and locations only — never diagnostics or details text, which servers fill
    with values from the resource (PHI)."""
    words = [type(err).__name__]
    if err.status is not None:
        words.append(str(err.status))
    issues = (err.outcome or {}).get("issue")
    parts: list[str] = []
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        text = f"{issue.get('severity') or '?'} [{issue.get('code') or '?'}]"
        where = issue.get("expression") or issue.get("location")
        if isinstance(where, list) and where:
            text += " " + ", ".join(str(w) for w in where)
        parts.append(text)
    reason = " ".join(words)
    return f"{reason}: {'; '.join(parts)}" if parts else reason


# The exit codes are bhi_fhir.exit_codes' one table; exit_code_for maps this tree onto it.
_EXIT_CODES: tuple[tuple[type[FhirError], int], ...] = (
    (TransportError, EXIT_UNAVAILABLE),
    (RetryableError, EXIT_UNAVAILABLE),  # 5xx, 429 or a timeout after the retries
    (Unauthorized, EXIT_NOPERM),
    (Forbidden, EXIT_NOPERM),
    (ScopeRefused, EXIT_CONFIG),
    (AuthError, EXIT_NOPERM),
    (Unsupported, EXIT_CONFIG),
    (InvalidResponse, EXIT_PROTOCOL),
    (NotFound, EXIT_NOINPUT),
    (Gone, EXIT_NOINPUT),
    (BadRequest, EXIT_DATAERR),
    (Conflict, EXIT_DATAERR),
    (PreconditionFailed, EXIT_DATAERR),
    (ServerError, EXIT_UNAVAILABLE),  # a 5xx not worth retrying
)


def exit_code_for(err: BaseException) -> int:
    """The CLI exit code for an error — the only place this mapping lives."""
    for cls, code in _EXIT_CODES:
        if isinstance(err, cls):
            return code
    return EXIT_FAILURE
