"""Exit codes of every ``bhi-fhir`` command: the one table (sysexits.h numbers beyond 2), so a
shell script or scheduler can tell "fix the input" from "try again later" from "fix the
configuration".

=====  ======================================================================================
0      done
1      partial: some patients or resources failed on the server (the report says which); the
       rest was done
2      usage: an option or argument the command does not accept (Click's own code)
65     bad data: an input file, line or Bundle entry that is not FHIR the command reads (the
       good input is still processed and written, and the run exits 65), or data the server
       refused (400/409/412/422)
66     the thing asked for is not on the server (404/410)
69     unavailable: the server does not answer, or still answers 5xx, 429 or times out after
       the retries; the state database does not answer
75     busy: another run holds what this one needs (an export folder): run again later
76     the server answered something that is not FHIR JSON
77     authorization: a token refused, a scope missing (401/403)
78     configuration: a practice plan or protocol that cannot be used, a wrong URL, a server
       that cannot support the workflow, an environment the command refuses (``serve --demo``
       with EHR settings), a sync stopped on an answer that is not FHIR
=====  ======================================================================================

The code is chosen by the type of what stopped the run, never by its message:
:func:`exit_code_of` for an exception, :func:`bhi_fhir.fhir.errors.exit_code_for` for a failed
request, :func:`exit_code_for_cause` for a run stopped by a failure's cause (``sync``).
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_DATAERR: Final = 65
EXIT_NOINPUT: Final = 66
EXIT_UNAVAILABLE: Final = 69
EXIT_TEMPFAIL: Final = 75
EXIT_PROTOCOL: Final = 76
EXIT_NOPERM: Final = 77
EXIT_CONFIG: Final = 78

# A run stopped by the cause of a failure (bhi_fhir.fhir.errors.CAUSES): the same numbers.
_CAUSE_CODES: Final = {
    "authorization": EXIT_NOPERM,
    "configuration": EXIT_CONFIG,
    "transient": EXIT_UNAVAILABLE,  # the server still failing after the retries
}


def exit_code_for_cause(cause: str | None) -> int:
    """The exit code of a run stopped by a failure of this cause (1 for any other)."""
    return _CAUSE_CODES.get(cause or "", EXIT_FAILURE)


def exit_code_of(exc: BaseException) -> int:
    """The exit code of a command stopped by ``exc``, by its type (1 for a type that names none):
    a practice plan or protocol that cannot be used 78, a state database that does not answer
    69 and one whose URL cannot be used 78, a folder another run holds 75, a failed request
    what :func:`bhi_fhir.fhir.errors.exit_code_for` gives.

    Each of those error types says its own code (its ``exit_code``, from this table), so this
    table imports none of the modules that import it."""
    code = getattr(exc, "exit_code", None)
    return code if isinstance(code, int) else EXIT_FAILURE
