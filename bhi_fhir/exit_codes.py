"""Exit codes of every ``bhi-fhir`` command: the one table (sysexits.h numbers beyond 2), so a
shell script or scheduler can tell "fix the input" from "try again later" from "fix the
configuration".

=====  ======================================================================================
0      done
1      partial: some patients or resources failed (the report says which); the rest was done
2      bad input: an option, a file or line that is not FHIR, a practice plan that cannot be
       used (the good input is still processed, and the run exits 2)
65     the server refused our data (400/409/412/422)
66     the thing asked for is not on the server (404/410)
69     the server is unreachable
70     the server broke (a 5xx not worth retrying)
75     transient: run again later (overload, timeouts, a database that does not answer)
76     the server answered something that is not FHIR JSON
77     authorization: a token refused, a scope missing (401/403)
78     configuration: a wrong URL, a server that cannot support the workflow, a sync stopped
       on an answer that is not FHIR
=====  ======================================================================================

:func:`bhi_fhir.fhir.errors.exit_code_for` maps a failed request to this table;
:func:`exit_code_for_cause` a run stopped by a failure's cause (``sync``).
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_DATAERR: Final = 65
EXIT_NOINPUT: Final = 66
EXIT_UNAVAILABLE: Final = 69
EXIT_SOFTWARE: Final = 70
EXIT_TEMPFAIL: Final = 75
EXIT_PROTOCOL: Final = 76
EXIT_NOPERM: Final = 77
EXIT_CONFIG: Final = 78

# A run stopped by the cause of a failure (bhi_fhir.fhir.errors.CAUSES): the same numbers.
_CAUSE_CODES: Final = {
    "authorization": EXIT_NOPERM,
    "configuration": EXIT_CONFIG,
    "transient": EXIT_TEMPFAIL,
}


def exit_code_for_cause(cause: str | None) -> int:
    """The exit code of a run stopped by a failure of this cause (1 for any other)."""
    return _CAUSE_CODES.get(cause or "", EXIT_FAILURE)
