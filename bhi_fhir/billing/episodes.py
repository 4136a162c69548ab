"""Episodes of CoCM care: whether a month is *initial* or *subsequent*.

Pure: a month is *initial* when the patient had no CoCM service (counted CoCM minutes, or a CoCM
code billed) in the previous ``episode_gap_months`` (6) months — a new episode after ≥ 6 months
without CoCM service (CPT; NC Medicaid citing AMA).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Final

from bhi_fhir.billing._time import Month, billing_codes_of, get_dict, parse_datetime
from bhi_fhir.billing.codes import MonthKind
from bhi_fhir.billing.counting import Counted
from bhi_fhir.billing.record import PatientRecord

__all__ = ["episode_of", "service_months"]

# CoCM service for the episode rule: the CoCM codes and the APCM CoCM-like add-ons.
_COCM_SERVICE_CODES: Final = frozenset(
    {"99492", "99493", "99494", "G2214", "G0512", "G0568", "G0569"}
)


def service_months(counted: Sequence[Counted], record: PatientRecord, tz: tzinfo) -> set[Month]:
    """The months with CoCM service: counted minutes, or a CoCM code billed that month."""
    months: set[Month] = set()
    for item in counted:
        for start, end in item.counted:
            month = Month.of(start, tz)
            while month.start(tz) < end:
                months.add(month)
                month = month.shift(1)
    for encounter in record.encounters:
        if encounter.get("status") in ("entered-in-error", "cancelled"):
            continue
        if billing_codes_of(encounter) & _COCM_SERVICE_CODES:
            billed = parse_datetime(get_dict(encounter, "period").get("start"), tz)
            if billed is not None:
                months.add(Month.of(billed, tz))
    return months


def episode_of(month: Month, service: set[Month], gap: int) -> tuple[MonthKind, Month]:
    """Initial/subsequent, and the first month of the episode ``month`` belongs to."""
    start = month
    while True:
        earlier = [m for m in service if start.shift(-gap) <= m < start]
        if not earlier:
            break
        start = max(earlier)
    return ("initial" if start == month else "subsequent"), start
