"""Calendar months, FHIR date parsing, interval arithmetic and tolerant resource reading.

Pure helpers for the time ledger (:mod:`bhi_fhir.billing.ledger` and the modules it is built
from): no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final

from bhi_fhir import fhirjson
from bhi_fhir.billing.codes import MONTHLY_CARE_MANAGEMENT_CODES
from bhi_fhir.billing.rules import CodingKey
from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT, CPT, HCPCS
from bhi_fhir.fhirjson import ResourceDict as Resource

# A FHIR date/dateTime/instant as an aware datetime (a partial date as its first instant, or
# with end=True the first after it): the vocabulary's one reader.
from bhi_fhir.fhirjson import moment as parse_datetime

__all__ = [
    "FAR_FUTURE",
    "FAR_PAST",
    "Interval",
    "Month",
    "billing_codes_of",
    "codings",
    "intersect",
    "is_time_entry",
    "parse_datetime",
    "reference_of",
    "seconds",
    "separately_billed_codes",
    "subtract",
    "union",
]

Interval = tuple[datetime, datetime]
# Open ends of an interval: a window with no end (or no start) runs to (from) these.
FAR_FUTURE: Final = datetime(9999, 1, 1, tzinfo=UTC)
FAR_PAST: Final = datetime(1, 1, 2, tzinfo=UTC)


# --------------------------------------------------------------------------- months and time


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month, ``YYYY-MM``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9998:
            raise ValueError(f"not a month: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            year, month = text.split("-")
            return cls(int(year), int(month))
        except ValueError:
            raise ValueError(f"not a month (YYYY-MM): {text!r}") from None

    @classmethod
    def of(cls, moment: datetime, tz: tzinfo) -> Month:
        local = moment.astimezone(tz)
        return cls(local.year, local.month)

    @property
    def index(self) -> int:
        return self.year * 12 + self.month - 1

    def shift(self, months: int) -> Month:
        index = self.index + months
        return Month(index // 12, index % 12 + 1)

    def start(self, tz: tzinfo) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=tz)

    def end(self, tz: tzinfo) -> datetime:
        """The first instant of the next month (half-open interval)."""
        return self.shift(1).start(tz)

    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def last_day(self) -> date:
        return self.shift(1).first_day() - timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge overlapping or touching intervals."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def intersect(intervals: Sequence[Interval], allowed: Sequence[Interval]) -> list[Interval]:
    out = []
    for start, end in intervals:
        for lo, hi in allowed:
            s, e = max(start, lo), min(end, hi)
            if s < e:
                out.append((s, e))
    return union(out)


def subtract(intervals: Sequence[Interval], cuts: Sequence[Interval]) -> list[Interval]:
    out = list(intervals)
    for lo, hi in union(cuts):
        next_out: list[Interval] = []
        for start, end in out:
            if hi <= start or lo >= end:
                next_out.append((start, end))
                continue
            if start < lo:
                next_out.append((start, lo))
            if hi < end:
                next_out.append((hi, end))
        out = next_out
    return out


def seconds(intervals: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in intervals)


# --------------------------------------------------------------------------- resource reading


def reference_of(value: object) -> str | None:
    """``Type/id`` from a Reference's ``reference`` (absolute or versioned forms accepted)."""
    if not isinstance(value, dict):
        return None
    found = fhirjson.reference(value)
    return found if found is not None and not found.startswith("#") else None


def get_list(resource: Resource, key: str) -> list[Any]:
    value = resource.get(key)
    return value if isinstance(value, list) else []


def get_dict(resource: Resource, key: str) -> Resource:
    value = resource.get(key)
    return value if isinstance(value, dict) else {}


def codings(concepts: Iterable[Any]) -> Iterator[tuple[str, str, str | None]]:
    """(system, code, display) of every Coding in some CodeableConcepts."""
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in get_list(concept, "coding"):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                display = coding.get("display")
                yield (
                    str(coding.get("system", "")),
                    coding["code"],
                    display if isinstance(display, str) else None,
                )


def has_coding(concepts: Iterable[Any], keys: Iterable[CodingKey]) -> bool:
    wanted = {(k.system, k.code) for k in keys}
    return any((s, c) in wanted for s, c, _ in codings(concepts))


def billing_codes_of(encounter: Resource) -> set[str]:
    """CPT/HCPCS codes an Encounter carries in ``type``."""
    return {c for s, c, _ in codings(get_list(encounter, "type")) if s in (CPT, HCPCS)}


def is_time_entry(encounter: Resource) -> bool:
    return any(
        s == BHI_ACTIVITY and c == CARE_MANAGEMENT_CONTACT
        for s, c, _ in codings(get_list(encounter, "type"))
    )


def versioned_reference(resource: Resource) -> str | None:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        return None
    ref = f"{resource.get('resourceType')}/{rid}"
    version = get_dict(resource, "meta").get("versionId")
    return f"{ref}/_history/{version}" if isinstance(version, str) and version else ref


def span_of(encounter: Resource, tz: tzinfo) -> Interval | None:
    period = get_dict(encounter, "period")
    start = parse_datetime(period.get("start"), tz)
    if start is None:
        return None
    length = get_dict(encounter, "length")
    value = length.get("value")
    factor = {"min": 60, "h": 3600, "s": 1}.get(str(length.get("code") or length.get("unit")))
    by_length = (
        start + timedelta(seconds=float(value) * factor)
        if isinstance(value, int | float) and factor is not None and value > 0
        else None
    )
    if "T" not in str(period.get("start")):
        # A date-only period says which day, not how long: the minutes come from `length`;
        # without one the time is unknown (counting the whole day would bill 1440 minutes).
        return (start, by_length) if by_length is not None else None
    end = parse_datetime(period.get("end"), tz, end=True) or by_length
    if end is None:
        return None
    return start, end


def participants_of(encounter: Resource) -> list[str]:
    out = []
    for participant in get_list(encounter, "participant"):
        if isinstance(participant, dict):
            ref = reference_of(participant.get("individual"))
            if ref is not None:
                out.append(ref)
    return out


def separately_billed_codes(encounter: Resource) -> set[str]:
    """CPT/HCPCS codes of a service billed on its own (not a monthly care-management code)."""
    return billing_codes_of(encounter) - MONTHLY_CARE_MANAGEMENT_CODES
