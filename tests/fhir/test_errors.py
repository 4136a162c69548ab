"""The error tree: status → type, OperationOutcome → message, type → exit code."""

from __future__ import annotations

import httpx
import pytest

from bhi_fhir.fhir import errors
from bhi_fhir.fhir.errors import (
    BadRequest,
    FatalError,
    Gone,
    NotFound,
    PreconditionFailed,
    RetryableError,
    TransportError,
    Unprocessable,
    error_class_for_status,
    error_from_response,
    exit_code_for,
    outcome_message,
)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert error_class_for_status(status) is RetryableError


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (404, NotFound),
        (410, Gone),
        (412, PreconditionFailed),
        (422, Unprocessable),
        (418, BadRequest),
        (501, errors.ServerError),
    ],
)
def test_fatal_statuses(status: int, cls: type[errors.FhirError]) -> None:
    assert error_class_for_status(status) is cls
    assert issubclass(cls, FatalError)


def test_outcome_message_reads_every_issue_part() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "required",
                "expression": ["Observation.status"],
                "details": {"text": "status is required"},
                "diagnostics": "Observation.status: minimum required = 1",
            },
            {"severity": "warning", "code": "informational", "diagnostics": "slow"},
        ],
    }
    assert outcome_message(outcome) == (
        "error [required] Observation.status: status is required "
        "(Observation.status: minimum required = 1); warning [informational]: slow"
    )


def test_outcome_message_tolerates_odd_shapes() -> None:
    assert outcome_message({"resourceType": "OperationOutcome", "issue": "nope"}) == ""
    assert outcome_message({"issue": [None, {"code": "x"}]}) == "[x]"


def test_error_from_response_keeps_outcome_and_drops_query() -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad date"}],
    }
    request = httpx.Request("GET", "http://s/fhir/Patient?name=Jane%20Doe")
    response = httpx.Response(400, json=body, request=request)
    err = error_from_response(response)
    assert isinstance(err, BadRequest)
    assert err.status == 400 and err.outcome == body
    assert "bad date" in str(err)
    assert "Jane" not in str(err)  # query values can be PHI


def test_oauth_error_description_is_the_message() -> None:
    request = httpx.Request("POST", "http://auth/token")
    body = {"error": "invalid_client", "error_description": "unknown kid"}
    err = error_from_response(httpx.Response(401, json=body, request=request))
    assert "invalid_client: unknown kid" in str(err)


def test_non_json_error_body_falls_back_to_reason() -> None:
    request = httpx.Request("GET", "http://s/fhir/metadata")
    err = error_from_response(httpx.Response(502, text="<html>", request=request))
    assert isinstance(err, RetryableError)
    assert "502 Bad Gateway" in str(err)


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (TransportError("x"), errors.EXIT_UNAVAILABLE),
        (RetryableError("x", status=503), errors.EXIT_UNAVAILABLE),
        (errors.Unauthorized("x"), errors.EXIT_NOPERM),
        (errors.AuthError("x"), errors.EXIT_NOPERM),
        (errors.ScopeRefused("x"), errors.EXIT_CONFIG),  # invalid_scope: what to ask for
        (errors.InvalidResponse("x"), errors.EXIT_PROTOCOL),
        (NotFound("x"), errors.EXIT_NOINPUT),
        (Unprocessable("x"), errors.EXIT_DATAERR),
        (PreconditionFailed("x"), errors.EXIT_DATAERR),
        (ValueError("x"), errors.EXIT_FAILURE),
    ],
)
def test_exit_codes(err: BaseException, code: int) -> None:
    assert exit_code_for(err) == code


_OO = {"resourceType": "OperationOutcome", "issue": [
    {"severity": "error", "code": "invariant", "expression": ["Task.for"],
     "diagnostics": "Patient Jane Roe (DOB 1980-02-03) is not valid"}]}


@pytest.mark.parametrize(
    ("err", "cause"),
    [
        pytest.param(errors.Unauthorized("x", status=401), "authorization", id="401"),
        pytest.param(errors.Forbidden("x", status=403), "authorization", id="403"),
        pytest.param(errors.AuthError("x"), "authorization", id="token-endpoint"),
        pytest.param(errors.ScopeRefused("x", status=400), "configuration", id="invalid_scope"),
        pytest.param(errors.InvalidResponse("x", status=200), "configuration", id="not-fhir"),
        pytest.param(NotFound("x", status=404), "configuration", id="404-wrong-url"),
        pytest.param(errors.ServerError("x", status=501), "configuration", id="501"),
        pytest.param(BadRequest("x", status=400, outcome=_OO), "refused", id="400-with-outcome"),
        pytest.param(Unprocessable("x", status=422, outcome=_OO), "refused",
                     id="422-with-outcome"),
        pytest.param(BadRequest("x", status=400), "transient", id="400-bare-proxy-page"),
        pytest.param(RetryableError("x", status=503), "transient", id="503"),
        pytest.param(errors.RequestTimeout("x"), "transient", id="timeout"),
        pytest.param(PreconditionFailed("x", status=412), "transient", id="412-clash"),
        pytest.param(errors.Conflict("x", status=409), "transient", id="409-clash"),
    ],
)
def test_failure_cause(err: errors.FhirError, cause: str) -> None:
    assert errors.failure_cause(err) == cause


def test_safe_reason_keeps_codes_and_locations_never_diagnostics() -> None:
    err = Unprocessable("POST /fhir → 422 Jane Roe", status=422, outcome=_OO)
    assert errors.safe_reason(err) == "Unprocessable 422: error [invariant] Task.for"
    assert errors.safe_reason(errors.RequestTimeout("POST /fhir: timed out")) == "RequestTimeout"
