"""What an instrument is, as data: its codes, items, answer range, bands and cut point.

Each instrument module (``phq9.py``, ``gad7.py`` …) declares one ``InstrumentSpec`` and cites
its source; the scorer (``scoring.py``) is generic over them. Item keys are LOINC codes where
public examples (US Core, PACIO, US BH Profiles) verify them, and this project's linkIds
(``profiles/questionnaires/``) where the LOINC item codes are not verified — never a guessed code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# The cut-point types live below the instruments and the practice plan (both use them);
# named here too for the modules that take them from the spec.
from bhi_fhir.cut_points import CutPoint as CutPoint
from bhi_fhir.cut_points import SexCutPoints as SexCutPoints
from bhi_fhir.instruments.result import InstrumentId


@dataclass(frozen=True, slots=True)
class Item:
    """One question. ``key`` is what the scorer and the Observations use to name it."""

    key: str
    number: str  # the item's number on the paper form: "1" … "9", "6b"
    text: str
    aliases: tuple[str, ...] = ()  # linkIds seen in the wild that mean this item
    scored: bool = True  # counts towards the total
    max_points: int = 3
    required: bool = True  # needed for the instrument to be complete (when asked at all)
    # A level the form may carry that the scorer derives itself (the C-SSRS risk level): its
    # answer is neither checked nor recorded, as a carried total is not.
    derived: bool = False


@dataclass(frozen=True, slots=True)
class Band:
    low: int
    high: int
    name: str


@dataclass(frozen=True, slots=True)
class Judgement:
    """What an instrument's own rules say beyond the total."""

    severity: str | None = None
    positive: bool | None = None
    flags: tuple[str, ...] = ()
    complete: bool | None = None  # overrides "every required item answered" when set


class Judge(Protocol):
    """An instrument's own rules: (spec, points by item key, complete, total, patient sex,
    positive as the cut point decided it — None when undecided or not given) -> Judgement."""

    def __call__(
        self, spec: InstrumentSpec, points: Mapping[str, int], complete: bool,
        total: int | None, sex: str | None, positive: bool | None = None, /,
    ) -> Judgement: ...


# points by item key -> keys of the items the instrument's skip logic did not ask
Skip = Callable[[Mapping[str, int]], frozenset[str]]


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    id: InstrumentId
    title: str
    panel_code: str | None  # LOINC panel; None where unverified
    total_code: str | None  # LOINC total score; None where unverified
    items: tuple[Item, ...]
    bands: tuple[Band, ...] = ()
    cut_point: int | None = None  # positive at total >= cut_point
    cut_point_by_sex: Callable[[str | None], int] | None = None  # replaces cut_point when set
    canonical_tokens: tuple[str, ...] = ()  # lower-case tokens that name it in a canonical URL
    total_aliases: tuple[str, ...] = ()  # linkIds of a total item carried in the response
    sums: bool = True  # has a total score (the C-SSRS screener has a risk level instead)
    judge: Judge | None = None
    skipped: Skip | None = None  # skipped items count 0 and are not missing
    source: str = ""
    _by_key: dict[str, Item] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for item in self.items:
            self._by_key[item.key] = item

    def item(self, key: str) -> Item | None:
        return self._by_key.get(key)

    @property
    def scored_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.scored)

    @property
    def max_total(self) -> int:
        return sum(i.max_points for i in self.scored_items)

    def cut(self, sex: str | None, override: CutPoint | None = None) -> int | None:
        """The cut point: the practice plan's ``override``, else by sex, else the default."""
        if isinstance(override, SexCutPoints):
            return override(sex)
        if override is not None:
            return override
        return self.cut_point_by_sex(sex) if self.cut_point_by_sex else self.cut_point

    def band(self, total: int) -> str | None:
        for band in self.bands:
            if band.low <= total <= band.high:
                return band.name
        return None


LL358_3 = "LL358-3"  # the shared PHQ/GAD frequency answer list (LOINC)

PHQ_BANDS = (
    Band(0, 4, "none-minimal"),
    Band(5, 9, "mild"),
    Band(10, 14, "moderate"),
    Band(15, 19, "moderately-severe"),
    Band(20, 27, "severe"),
)
