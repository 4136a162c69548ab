"""Every instrument bhi-fhir scores, and how a response is recognised as one of them.

Recognition never uses item position (the PHQ-A swaps items 1 and 2 of the PHQ-9):
the ``questionnaire`` canonical first, then the Questionnaire's code, then what the items
themselves say (their LOINC codes, LOINC codes in their linkIds, or known linkIds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from bhi_fhir.instruments import auditc, cssrs, epds, gad2, gad7, phq2, phq9, phqa
from bhi_fhir.instruments.result import InstrumentId
from bhi_fhir.instruments.spec import InstrumentSpec

INSTRUMENTS: Final[tuple[InstrumentSpec, ...]] = (
    phq9.SPEC, phq2.SPEC, phqa.SPEC, gad7.SPEC, gad2.SPEC, cssrs.SPEC, auditc.SPEC, epds.SPEC,
)
BY_ID: Final[Mapping[InstrumentId, InstrumentSpec]] = {s.id: s for s in INSTRUMENTS}

_LOINC_IN_LINK_ID = re.compile(r"(?<![\d-])(\d{3,6}-\d)(?![\d-])")

# linkId (lower case) -> (instrument, item key)
_ALIASES: Final[dict[str, list[tuple[InstrumentId, str]]]] = {}
for _spec in INSTRUMENTS:
    for _item in _spec.items:
        for _alias in (_item.key, *_item.aliases):
            _ALIASES.setdefault(_alias.lower(), []).append((_spec.id, _item.key))
    for _alias in _spec.total_aliases:
        _ALIASES.setdefault(_alias.lower(), []).append((_spec.id, "#total"))
    if _spec.total_code:
        _ALIASES.setdefault(_spec.total_code, []).append((_spec.id, "#total"))


def by_canonical(canonical: str | None) -> InstrumentSpec | None:
    """The instrument a ``questionnaire`` canonical names, when exactly one names it best."""
    if not canonical:
        return None
    return _by_canonical(canonical)


@lru_cache(maxsize=4096)
def _by_canonical(canonical: str) -> InstrumentSpec | None:
    text = canonical.split("|", 1)[0].lower()
    best: list[tuple[int, InstrumentSpec]] = []
    for spec in INSTRUMENTS:
        matched = [len(t) for t in spec.canonical_tokens if t in text]
        if matched:
            best.append((max(matched), spec))
    if not best:
        return None
    best.sort(key=lambda pair: -pair[0])
    if len(best) > 1 and best[0][0] == best[1][0]:
        return None
    return best[0][1]


def by_questionnaire(questionnaire: Mapping[str, Any] | None) -> InstrumentSpec | None:
    if not questionnaire:
        return None
    for coding in questionnaire.get("code") or ():
        if isinstance(coding, Mapping):
            for spec in INSTRUMENTS:
                if spec.panel_code and coding.get("code") == spec.panel_code:
                    return spec
    url = questionnaire.get("url")
    return by_canonical(url if isinstance(url, str) else None)


def candidates(link_id: str, code: str | None) -> list[tuple[InstrumentId, str]]:
    """What an item could be: (instrument, item key) pairs, from its code or its linkId."""
    return list(cached_candidates(link_id, code))


@lru_cache(maxsize=16384)
def cached_candidates(link_id: str, code: str | None) -> tuple[tuple[InstrumentId, str], ...]:
    """``candidates``, memoised (a pure function of two strings); do not modify the result."""
    return tuple(_candidates(link_id, code))


def _candidates(link_id: str, code: str | None) -> list[tuple[InstrumentId, str]]:
    if code:
        found = [(s.id, code) for s in INSTRUMENTS if s.item(code)]
        found += [(s.id, "#total") for s in INSTRUMENTS if s.total_code == code]
        if found:
            return found
    lowered = link_id.lower().strip("/")
    if lowered in _ALIASES:
        return list(_ALIASES[lowered])
    for loinc in _LOINC_IN_LINK_ID.findall(link_id):
        found = [(s.id, loinc) for s in INSTRUMENTS if s.item(loinc)]
        found += [(s.id, "#total") for s in INSTRUMENTS if s.total_code == loinc]
        if found:
            return found
    return []


def by_items(items: Iterable[list[tuple[InstrumentId, str]]]) -> InstrumentSpec | None:
    """The smallest instrument that holds every recognised item; else the one holding most."""
    votes: dict[InstrumentId, int] = {}
    common: set[InstrumentId] | None = None
    for options in items:
        ids = {instrument for instrument, key in options if key != "#total"}
        if not ids:
            continue
        for instrument in ids:
            votes[instrument] = votes.get(instrument, 0) + 1
        common = ids if common is None else common & ids
    if not votes:
        return None
    if common:
        return min((BY_ID[i] for i in common), key=lambda s: len(s.items))
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return BY_ID[ranked[0][0]]
