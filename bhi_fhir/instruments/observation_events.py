"""Screening Observations (and DiagnosticReports) grouped into screening events. Pure.

EHRs and test servers hold many screens as Observations, not QuestionnaireResponses
(US Core Observation Screening Assessment; Synthea 3.3 output). The shapes read here:

- **US Core Observation Screening Assessment**: a panel Observation (the instrument's LOINC
  panel code, e.g. 44249-1) whose ``hasMember`` lists item Observations (``valueCodeableConcept``
  LA answer codes, or a number) and the total Observation (44261-6 …); items may also come as
  ``component``s of the panel or total.
- **Synthea 3.3**: a DiagnosticReport with the panel code whose ``result`` points at one total
  Observation (``valueQuantity`` ``{score}``); no items.
- A lone total Observation (a flowsheet row): value in ``valueQuantity``, ``valueInteger`` or
  ``valueString`` ("12", as in US Core's 44261-6 example).
- Loose item Observations with no panel: grouped with a total (or with each other) of the same
  patient and the same ``effective`` time.

Each event is one screen: its instrument, the container (report or panel) and the member
Observations. The event's instrument is recognised by LOINC code through the instrument
registry (panel, total and item codes of each ``InstrumentSpec``); the category (``survey``) is
not required, so a row that omits it is still read. Scoring an event is
:mod:`bhi_fhir.instruments.observation_scores`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bhi_fhir import fhirjson
from bhi_fhir.instruments.registry import INSTRUMENTS, by_items, candidates
from bhi_fhir.instruments.result import InstrumentId
from bhi_fhir.instruments.spec import InstrumentSpec
from bhi_fhir.instruments.weights import LOINC_SYSTEM

__all__ = [
    "ScreeningEvent",
    "as_list",
    "bundle_references",
    "code_of",
    "derived_links",
    "effective_of",
    "own_ref",
    "resolve",
    "screening_events",
    "subject_of",
]

Json = Mapping[str, Any]

_BY_PANEL: Final[Mapping[str, InstrumentSpec]] = {
    s.panel_code: s for s in INSTRUMENTS if s.panel_code
}
_BY_TOTAL: Final[Mapping[str, InstrumentSpec]] = {
    s.total_code: s for s in INSTRUMENTS if s.total_code
}
_MAX_DEPTH: Final = 3  # DiagnosticReport → panel → panel: deeper nesting is not a screen


def bundle_references(bundle: Json) -> dict[str, str]:
    """``fullUrl`` → ``"Type/id"`` for the entries of a Bundle, to resolve ``urn:uuid:``
    references (Synthea's transaction Bundles reference the patient and results that way)."""
    found: dict[str, str] = {}
    for entry in bundle.get("entry") or ():
        if not isinstance(entry, Mapping):
            continue
        url, resource = entry.get("fullUrl"), entry.get("resource")
        if isinstance(url, str) and isinstance(resource, Mapping):
            kind, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(kind, str) and isinstance(rid, str) and rid:
                found[url] = f"{kind}/{rid}"
    return found


@dataclass(slots=True)
class ScreeningEvent:
    spec: InstrumentSpec
    container: Json | None  # the DiagnosticReport or panel Observation
    members: list[Json] = field(default_factory=list)


def screening_events(resources: Iterable[Json], urls: Mapping[str, str]) -> list[ScreeningEvent]:
    """Group Observations into screening events: reports first (their results, nested panels
    flattened), then panels not inside a report, then loose totals and items by
    (patient, effective time)."""
    observations: dict[str, Json] = {}
    order: list[str] = []
    reports: list[Json] = []
    for index, resource in enumerate(resources):
        kind = resource.get("resourceType")
        if kind == "Observation":
            key = own_ref(resource) or f"#observation-{index}"
            if key not in observations:
                observations[key] = resource
                order.append(key)
        elif kind == "DiagnosticReport":
            reports.append(resource)

    used: set[str] = set()
    events: list[ScreeningEvent] = []
    for report in reports:
        claimed: list[str] = []
        members = _members(report, "result", observations, urls, used, 0, claimed)
        spec = _spec_of(report, members)
        if spec is None:
            used.difference_update(claimed)  # not a screen: its results stay free
        else:
            events.append(ScreeningEvent(spec, report, members))
    for key in order:
        obs = observations[key]
        if key in used or code_of(obs) not in _BY_PANEL:
            continue
        used.add(key)
        members = _members(obs, "hasMember", observations, urls, used, 0)
        events.append(ScreeningEvent(_BY_PANEL[code_of(obs) or ""], obs, members))

    loose: dict[tuple[str | None, str | None], list[Json]] = {}
    for key in order:
        obs = observations[key]
        if key not in used and candidates_of(obs):
            loose.setdefault((subject_of(obs, urls), effective_of(obs)), []).append(obs)
    for group in loose.values():
        # The longest instrument first: a PHQ-9 total claims its items before a PHQ-2 total.
        totals = sorted(
            (o for o in group if code_of(o) in _BY_TOTAL),
            key=lambda o: -len(_BY_TOTAL[code_of(o) or ""].items),
        )
        rest = [o for o in group if code_of(o) not in _BY_TOTAL]
        for total in totals:
            spec = _BY_TOTAL[code_of(total) or ""]
            mine = [o for o in rest if spec.item(code_of(o) or "")]
            rest = [o for o in rest if not spec.item(code_of(o) or "")]
            events.append(ScreeningEvent(spec, None, [total, *mine]))
        found = by_items(candidates_of(o) for o in rest) if rest else None
        if found is not None:
            events.append(ScreeningEvent(found, None, rest))
    return events


def _members(
    container: Json,
    key: str,
    observations: Mapping[str, Json],
    urls: Mapping[str, str],
    used: set[str],
    depth: int,
    claimed: list[str] | None = None,
) -> list[Json]:
    """The Observations ``container.<key>`` points at, nested panels flattened; each is
    added to ``used`` (and to ``claimed``, so a caller can give them back)."""
    found: list[Json] = []
    for reference in container.get(key) or ():
        ref = resolve(reference, urls)
        if ref is None or ref in used or ref not in observations:
            continue
        used.add(ref)
        if claimed is not None:
            claimed.append(ref)
        member = observations[ref]
        if member.get("hasMember") and depth < _MAX_DEPTH:
            found.append(member)
            found.extend(
                _members(member, "hasMember", observations, urls, used, depth + 1, claimed)
            )
        else:
            found.append(member)
    return found


def _spec_of(report: Json, members: Sequence[Json]) -> InstrumentSpec | None:
    code = code_of(report)
    if code in _BY_PANEL:
        return _BY_PANEL[code or ""]
    for member in members:
        member_code = code_of(member)
        if member_code in _BY_PANEL:
            return _BY_PANEL[member_code or ""]
        if member_code in _BY_TOTAL:
            return _BY_TOTAL[member_code or ""]
    return None


def derived_links(event: ScreeningEvent, urls: Mapping[str, str]) -> set[str]:
    """The QuestionnaireResponses the event's report, panel or members are derived from."""
    parts = [event.container] if event.container is not None else []
    return {
        ref
        for resource in (*parts, *event.members)
        for link in as_list(resource.get("derivedFrom"))
        if (ref := resolve(link, urls)) is not None and ref.startswith("QuestionnaireResponse/")
    }


def code_of(resource: Json) -> str | None:
    """The first LOINC code of ``resource.code`` (or of a component's ``code``)."""
    concept = resource.get("code")
    if not isinstance(concept, Mapping):
        return None
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, Mapping) and coding.get("system") in (None, LOINC_SYSTEM):
            code = coding.get("code")
            if isinstance(code, str):
                return code
    return None


def candidates_of(obs: Json) -> list[tuple[InstrumentId, str]]:
    code = code_of(obs)
    return candidates(code, code) if code else []


def own_ref(resource: Json) -> str | None:
    kind, rid = resource.get("resourceType"), resource.get("id")
    return f"{kind}/{rid}" if isinstance(kind, str) and isinstance(rid, str) and rid else None


def resolve(reference: object, urls: Mapping[str, str]) -> str | None:
    """``Type/id`` of a Reference (a Bundle ``fullUrl`` through ``urls``)."""
    return fhirjson.reference(reference, urls) if isinstance(reference, Mapping) else None


def subject_of(resource: Json, urls: Mapping[str, str]) -> str | None:
    return fhirjson.patient_of(resource, urls)


def effective_of(resource: Json) -> str | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        value = resource.get(key)
        if isinstance(value, str) and value:
            return value
    period = resource.get("effectivePeriod")
    if isinstance(period, Mapping) and isinstance(period.get("start"), str):
        return str(period["start"])
    issued = resource.get("issued")
    return issued if isinstance(issued, str) and issued else None


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
