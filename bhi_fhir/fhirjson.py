"""FHIR JSON vocabulary: references and "patient of", dates and instants, ETags — the one place
each is read or written. Pure.

A Reference.reference (FHIR R4 https://hl7.org/fhir/R4/references.html) is one of:

- relative ``Patient/1``, versioned ``Patient/1/_history/3`` → ``Patient/1``;
- absolute ``https://ehr/fhir/Patient/1`` (optionally versioned) → ``Patient/1`` (the server base
  is dropped: one pass reads one server's data, so the type and id name the resource);
- a Bundle ``fullUrl`` such as ``urn:uuid:…`` (https://hl7.org/fhir/R4/bundle.html#references):
  resolved through a ``fullUrl → Type/id`` map built from the Bundle's own entries
  (:func:`full_urls` / :func:`add_full_url`); a ``urn:`` not in the map names nothing;
- contained ``#x``: kept as ``#x`` (it points inside the referring resource, see
  :func:`contained`);
- a conditional reference (``Patient?identifier=…``) or anything else: None.

A resource's map lookup comes first, so an absolute ``fullUrl`` in a Bundle resolves to the
entry's own type and id even where its URL path would read otherwise.

Dates (R4 https://hl7.org/fhir/R4/datatypes.html#date, #dateTime, #instant) come at the
precision they were written: a year (``2026``), a year-month (``2026-11``), a day, or a
dateTime with a time and, then, an offset. :func:`day` is the day written, :func:`day_in` that
day in the practice's time zone, :func:`day_range` the days a partial date can mean,
:func:`moment` a date as an instant (a partial one as its first instant, or with ``end`` the
first after it), :func:`instant` a stored instant read back. A version-aware update sends
``If-Match`` as a weak ETag (R4 https://hl7.org/fhir/R4/http.html#versioning):
:func:`etag` writes it, :func:`etag_version` reads the version back. What a server answered
for each entry of a batch or transaction is :func:`entry_answers` (:class:`EntryAnswer`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "EntryAnswer",
    "add_full_url",
    "contained",
    "day",
    "day_in",
    "day_range",
    "entry_answer",
    "entry_answers",
    "etag",
    "etag_version",
    "full_urls",
    "instant",
    "localize",
    "moment",
    "patient_of",
    "reference",
    "replaced_by",
    "survivors",
]

# The package's two names for a FHIR resource as JSON: Resource where it is only read,
# ResourceDict where the code builds or edits one.
Resource = Mapping[str, Any]
ResourceDict = dict[str, Any]

# R4 Reference.reference literal: [base/]Type/id[/_history/version]
# (https://hl7.org/fhir/R4/references.html#literal). Read tolerantly: an
# id outside R4's [A-Za-z0-9\-\.]{1,64} from an EHR still names its resource.
_LITERAL = re.compile(r"(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/]+)(?:/_history/[^/]+)?")
# Where each resource names its patient, in the order tried (R4 compartment Patient fields).
_PATIENT_KEYS = ("subject", "patient", "for", "beneficiary")


def reference(value: object, urls: Mapping[str, str] | None = None) -> str | None:
    """``Type/id`` (or ``#x`` for a contained resource) of a Reference or reference string."""
    ref = value.get("reference") if isinstance(value, Mapping) else value
    if not isinstance(ref, str) or not ref:
        return None
    if urls is not None and (found := urls.get(ref)) is not None:
        return found
    if ref.startswith("#"):
        return ref if len(ref) > 1 else None
    if ref.startswith("urn:") or "?" in ref:
        return None
    match = _LITERAL.fullmatch(ref)
    return f"{match['type']}/{match['id']}" if match else None


def contained(resource: Resource, ref: str) -> Resource | None:
    """The contained resource a ``#x`` reference points to, or None."""
    if not ref.startswith("#"):
        return None
    for inner in resource.get("contained") or []:
        if isinstance(inner, Mapping) and inner.get("id") == ref[1:]:
            return inner
    return None


def add_full_url(urls: dict[str, str], full_url: object, resource: Resource) -> None:
    """Record one Bundle entry's ``fullUrl → Type/id``. An entry without an id (a conditional
    create not yet on a server) has no ``Type/id``: its fullUrl stays its only name."""
    kind, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(full_url, str) and full_url and isinstance(kind, str) and isinstance(rid, str):
        urls[full_url] = f"{kind}/{rid}" if rid else full_url


def full_urls(entries: Iterable[object]) -> dict[str, str]:
    """The ``fullUrl → Type/id`` map of a Bundle's entries."""
    urls: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(resource := entry.get("resource"), Mapping):
            add_full_url(urls, entry.get("fullUrl"), resource)
    return urls


def patient_of(resource: Resource, urls: Mapping[str, str] | None = None) -> str | None:
    """The ``Patient/<id>`` a resource belongs to, or None.

    A Patient is its own; else subject, patient, for or beneficiary (the first that names a
    Patient); a Provenance by its first Patient target.
    """
    kind = resource.get("resourceType")
    if kind == "Patient":
        rid = resource.get("id")
        return f"Patient/{rid}" if isinstance(rid, str) and rid else None
    for key in _PATIENT_KEYS:
        found = _patient(resource.get(key), urls)
        if found is not None:
            return found
    if kind == "Provenance":
        for target in resource.get("target") or []:
            if (found := _patient(target, urls)) is not None:
                return found
    return None


def replaced_by(record: Resource, urls: Mapping[str, str] | None = None) -> str | None:
    """The ``Patient/<id>`` a Patient.link of type replaced-by points to, or None
    (https://hl7.org/fhir/R4/patient.html#links)."""
    for link in record.get("link") or []:
        if (isinstance(link, Mapping) and link.get("type") == "replaced-by"
                and (found := _patient(link.get("other"), urls)) is not None):
            return found
    return None


def survivors(links: Mapping[str, str], present: Iterable[str]) -> dict[str, str]:
    """Replaced Patient → the surviving Patient, for the replaced records whose survivor is
    ``present``; ``links`` maps each record to what its replaced-by link names. Chains are
    followed; a cycle is not (its records keep their own work)."""
    here = set(present)
    found: dict[str, str] = {}
    for start, target in links.items():
        seen = {start}
        while target in links and target not in seen:  # a chain; a cycle stops
            seen.add(target)
            target = links[target]
        if target in here and target not in seen:
            found[start] = target
    return found


def localize(resource: dict[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """``resource`` with every reference that names a Bundle entry through ``urls`` rewritten
    to that entry's ``Type/id`` (what a server does with a transaction's ``urn:uuid``
    references, https://hl7.org/fhir/R4/bundle.html#references). Unchanged parts are shared."""
    if not urls:
        return resource
    return _localize(resource, urls)  # type: ignore[no-any-return]


def _localize(value: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for key, item in value.items():
            new = (urls.get(item, item) if key == "reference" and isinstance(item, str)
                   else _localize(item, urls))
            if new is not item:
                out = dict(value) if out is None else out
                out[key] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [_localize(item, urls) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _patient(value: object, urls: Mapping[str, str] | None) -> str | None:
    found = reference(value, urls)
    return found if found is not None and found.startswith("Patient/") else None


# ------------------------------------------------------------------------- dates and instants

_PARTIAL = re.compile(r"(?P<year>\d{4})(?:-(?P<month>\d{2}))?")


def day(value: object) -> date | None:
    """The calendar day a FHIR date or dateTime is written on (a dateTime's own date, whatever
    its offset); None for a year, a year-month or anything unreadable."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def day_in(value: object, zone: tzinfo | None) -> date | None:
    """The calendar day of a FHIR date/dateTime in ``zone``. A dateTime with a time carries its
    own offset (R4 dateTime: "If hours and minutes are specified, a time zone SHALL be
    populated"), so 2026-11-27T07:30:00Z is the 26th in Los Angeles; a bare date is that day
    wherever it is read; a time without an offset is taken as written."""
    written = day(value)
    if written is None or zone is None or not isinstance(value, str) or "T" not in value:
        return written
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return written
    return parsed.astimezone(zone).date() if parsed.tzinfo is not None else written


def day_range(value: object) -> tuple[date, date] | None:
    """The first and last day a FHIR date/dateTime of any precision can mean: a year its 1 Jan
    to 31 Dec, a year-month its first to last day, a day (or a dateTime's day) itself."""
    written = day(value)
    if written is not None:
        return written, written
    if not isinstance(value, str):
        return None
    partial = _PARTIAL.fullmatch(value)
    if partial is None:
        return None
    year = int(partial["year"])
    if partial["month"] is None:
        return date(year, 1, 1), date(year, 12, 31)
    month = int(partial["month"])
    if not 1 <= month <= 12:
        return None
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def moment(value: object, zone: tzinfo, *, end: bool = False) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime: a partial date (year, year-month,
    day) as its first instant in ``zone`` or, with ``end``, the first instant after it; a
    dateTime without an offset in ``zone``. None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= 10:
        days = day_range(value)
        if days is None:
            return None
        first = days[1] + timedelta(days=1) if end else days[0]
        return datetime(first.year, first.month, first.day, tzinfo=zone)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def instant(value: str) -> datetime:
    """An instant as stored (ISO 8601 with ``Z`` or an offset) as an aware datetime; one stored
    without an offset is UTC (SQLite drops it). ValueError when unreadable."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------- ETags


def etag(version: str | int) -> str:
    """The weak ETag of a version: ``W/"3"`` from 3, "3" or an ETag already in that form."""
    text = str(version)
    if text.startswith(('W/"', '"')):
        return text
    return f'W/"{text}"'


def etag_version(tag: str | None) -> str:
    """The version an ETag names: "3" from ``W/"3"``, ``"3"`` or 3; "" for none."""
    return (tag or "").removeprefix("W/").strip('"')


# ------------------------------------------------------------- batch/transaction answers


@dataclass(frozen=True, slots=True)
class EntryAnswer:
    """What the server answered for one entry of a batch or transaction
    (R4 ``Bundle.entry.response``, https://hl7.org/fhir/R4/bundle-definitions.html#Bundle.entry.response):
    ``status`` the HTTP status line ("201 Created"; "" when missing), ``location`` where the
    resource was written ("" when not given)."""

    status: str = ""
    location: str = ""

    @property
    def ok(self) -> bool:
        """A 2xx: the entry was carried out (created, matched, updated or read)."""
        return self.status.startswith("2")

    @property
    def created(self) -> bool:
        """201: the server created the resource, rather than finding it (a conditional create
        that matched answers 200)."""
        return self.status.startswith("201")


def entry_answer(entry: object) -> EntryAnswer:
    """The answer carried by one response-Bundle entry; an empty one for anything else."""
    answer = entry.get("response") if isinstance(entry, Mapping) else None
    if not isinstance(answer, Mapping):
        return EntryAnswer()
    return EntryAnswer(str(answer.get("status") or "").strip(),
                       str(answer.get("location") or ""))


def entry_answers(response: Resource) -> list[EntryAnswer]:
    """The answer to each entry of a batch-response or transaction-response, in order."""
    entries = response.get("entry")
    return [entry_answer(e) for e in entries] if isinstance(entries, list) else []
