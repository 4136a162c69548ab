"""PHQ-2 — the first two PHQ-9 items (Arroll 2010).

Panel 55757-9, total 55758-7, items 44250-9 and 44255-8, range 0–6. Positive at >= 3 (the
authors' preferred cut point; Arroll 2010); the cut point is configurable in the practice plan.
A positive PHQ-2 leads to a PHQ-9 (the workflow's ``phq9-followup`` rule).
"""

from __future__ import annotations

from bhi_fhir.instruments.phq9 import ITEMS as PHQ9_ITEMS
from bhi_fhir.instruments.spec import InstrumentSpec, Item


def _with(item: Item, *extra: str) -> Item:
    return Item(item.key, item.number, item.text, item.aliases + extra)


SPEC = InstrumentSpec(
    id="phq2",
    title="PHQ-2",
    panel_code="55757-9",
    total_code="55758-7",
    items=(
        _with(PHQ9_ITEMS[0], "phq-phq2a", "phq2-1", "phq2-item-1"),
        _with(PHQ9_ITEMS[1], "phq-phq2b", "phq2-2", "phq2-item-2"),
    ),
    cut_point=3,
    canonical_tokens=("55757-9", "phq-2", "phq2"),
    total_aliases=("phq2-total", "phq2-total-score", "phq-2-total"),
    source="Arroll 2010; PACIO Cognitive Status IG representative assessments",
)
