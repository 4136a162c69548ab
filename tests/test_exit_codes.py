"""One exit-code table for every command (bhi_fhir.exit_codes): a failed request and a run
stopped by a failure's cause map onto the same numbers."""

from __future__ import annotations

import pytest

from bhi_fhir import exit_codes
from bhi_fhir.fhir import errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.TransportError("no response"), exit_codes.EXIT_UNAVAILABLE),
        (errors.RequestTimeout("timed out"), exit_codes.EXIT_UNAVAILABLE),
        (errors.RetryableError("503", status=503), exit_codes.EXIT_UNAVAILABLE),
        (errors.Unauthorized("401", status=401), exit_codes.EXIT_NOPERM),
        (errors.Forbidden("403", status=403), exit_codes.EXIT_NOPERM),
        (errors.AuthError("invalid_client"), exit_codes.EXIT_NOPERM),
        (errors.InvalidResponse("not JSON"), exit_codes.EXIT_PROTOCOL),
        (errors.NotFound("404", status=404), exit_codes.EXIT_NOINPUT),
        (errors.Gone("410", status=410), exit_codes.EXIT_NOINPUT),
        (errors.BadRequest("400", status=400), exit_codes.EXIT_DATAERR),
        (errors.Unprocessable("422", status=422), exit_codes.EXIT_DATAERR),
        (errors.Conflict("409", status=409), exit_codes.EXIT_DATAERR),
        (errors.PreconditionFailed("412", status=412), exit_codes.EXIT_DATAERR),
        (errors.ServerError("501", status=501), exit_codes.EXIT_UNAVAILABLE),
        (ValueError("not a FHIR error"), exit_codes.EXIT_FAILURE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_failed_request(error: BaseException, code: int) -> None:
    assert errors.exit_code_for(error) == code


@pytest.mark.parametrize(
    ("cause", "code"),
    [
        (errors.CAUSE_AUTHORIZATION, exit_codes.EXIT_NOPERM),
        (errors.CAUSE_CONFIGURATION, exit_codes.EXIT_CONFIG),
        (errors.CAUSE_TRANSIENT, exit_codes.EXIT_UNAVAILABLE),
        (errors.CAUSE_REFUSED, exit_codes.EXIT_FAILURE),  # held patients: a partial run
        (None, exit_codes.EXIT_FAILURE),  # a plan or protocol file that failed mid-run
    ],
    ids=["authorization", "configuration", "transient", "refused", "no-cause"],
)
def test_run_stopped_by_cause(cause: str | None, code: int) -> None:
    assert exit_codes.exit_code_for_cause(cause) == code


def test_errors_module_names_the_same_numbers() -> None:
    """Callers reading errors.EXIT_* see the one table's numbers."""
    for name in ("EXIT_OK", "EXIT_FAILURE", "EXIT_DATAERR", "EXIT_NOINPUT", "EXIT_UNAVAILABLE",
                 "EXIT_TEMPFAIL", "EXIT_PROTOCOL", "EXIT_NOPERM", "EXIT_CONFIG"):
        assert getattr(errors, name) == getattr(exit_codes, name)
