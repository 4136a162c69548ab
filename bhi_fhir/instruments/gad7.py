"""GAD-7 — Generalized Anxiety Disorder, 7 items (Spitzer 2006).

Panel 69737-5, total 70274-6, range 0–21; bands 0–4 minimal, 5–9 mild, 10–14 moderate,
15–21 severe; positive at >= 10 (Spitzer 2006). No suicide item. Some LOINC forms answer
item 2 with LA18938-3 "More days than not" in the 2-point slot (``weights.LA_POINTS``).
"""

from __future__ import annotations

from bhi_fhir.instruments.spec import Band, InstrumentSpec, Item


def _aliases(n: int) -> tuple[str, ...]:
    return (f"gad7-{n}", f"gad7-item-{n}", f"gad-7-{n}", f"gad7-q{n}")


ITEMS = (
    Item("69725-0", "1", "Feeling nervous, anxious, or on edge", _aliases(1)),
    Item("68509-9", "2", "Not being able to stop or control worrying", _aliases(2)),
    Item("69733-4", "3", "Worrying too much about different things", _aliases(3)),
    Item("69734-2", "4", "Trouble relaxing", _aliases(4)),
    Item("69735-9", "5", "Being so restless that it is hard to sit still", _aliases(5)),
    Item("69689-8", "6", "Becoming easily annoyed or irritable", _aliases(6)),
    Item("69736-7", "7", "Feeling afraid as if something awful might happen", _aliases(7)),
)

SPEC = InstrumentSpec(
    id="gad7",
    title="GAD-7",
    panel_code="69737-5",
    total_code="70274-6",
    items=ITEMS,
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
           Band(15, 21, "severe")),
    cut_point=10,
    canonical_tokens=("69737-5", "gad-7", "gad7"),
    total_aliases=("gad7-total", "gad-7-total", "gad7-total-score"),
    source="Spitzer 2006; PHR IG GAD-7 example",
)
