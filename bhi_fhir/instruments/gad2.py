"""GAD-2 — GAD-7 items 1–2 (Kroenke 2007).

Range 0–6, positive at >= 3 (Kroenke 2007). The GAD-2 panel and total LOINC codes are
UNVERIFIED: the panel is recognised by its canonical or by a response holding exactly the two
GAD-7 items, and no total Observation code is invented (this project's own code is used).
"""

from __future__ import annotations

from bhi_fhir.instruments.gad7 import ITEMS as GAD7_ITEMS
from bhi_fhir.instruments.spec import InstrumentSpec, Item


def _with(item: Item, *extra: str) -> Item:
    return Item(item.key, item.number, item.text, item.aliases + extra)


SPEC = InstrumentSpec(
    id="gad2",
    title="GAD-2",
    panel_code=None,
    total_code=None,
    items=(
        _with(GAD7_ITEMS[0], "gad2-1", "gad2-item-1"),
        _with(GAD7_ITEMS[1], "gad2-2", "gad2-item-2"),
    ),
    cut_point=3,
    canonical_tokens=("gad-2", "gad2"),
    total_aliases=("gad2-total", "gad2-total-score"),
    source="Kroenke 2007",
)
