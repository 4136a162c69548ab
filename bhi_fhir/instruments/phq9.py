"""PHQ-9 — Patient Health Questionnaire, 9 items (Kroenke 2001).

Panel 44249-1, total 44261-6, range 0–27; bands 0–4/5–9/10–14/15–19/20–27 (Kroenke 2001);
positive at >= 10 (HEDIS DSF, Arroll 2010). Item 9 (44260-8) above 0 is a crisis flag
whatever the total. Item 69722-7 (functional difficulty) is not part of the total.
"""

from __future__ import annotations

from collections.abc import Mapping

from bhi_fhir.instruments.result import SUICIDE_RISK
from bhi_fhir.instruments.spec import PHQ_BANDS, InstrumentSpec, Item, Judgement

ITEM_9 = "44260-8"


def _aliases(n: int) -> tuple[str, ...]:
    return (f"phq-phq9-q{n:02d}", f"phq9-{n}", f"phq9-item-{n}", f"phq-9-{n}", f"phq9-q{n}")


ITEMS = (
    Item("44250-9", "1", "Little interest or pleasure in doing things", _aliases(1)),
    Item("44255-8", "2", "Feeling down, depressed, or hopeless", _aliases(2)),
    Item("44259-0", "3", "Trouble falling or staying asleep, or sleeping too much", _aliases(3)),
    Item("44254-1", "4", "Feeling tired or having little energy", _aliases(4)),
    Item("44251-7", "5", "Poor appetite or overeating", _aliases(5)),
    Item("44258-2", "6", "Feeling bad about yourself", _aliases(6)),
    Item("44252-5", "7", "Trouble concentrating on things", _aliases(7)),
    Item("44253-3", "8", "Moving or speaking slowly, or being fidgety or restless", _aliases(8)),
    Item(ITEM_9, "9", "Thoughts that you would be better off dead or of hurting yourself",
         _aliases(9)),
    Item("69722-7", "10", "How difficult have these problems made it", ("phq9-difficulty",),
         scored=False, required=False),
)


def judge_item9(
    spec: InstrumentSpec, points: Mapping[str, int], complete: bool, total: int | None,
    sex: str | None, positive: bool | None = None,
) -> Judgement:
    """Any answer above 0 on item 9 needs same-day follow-up, complete or not (Kroenke 2001)."""
    return Judgement(flags=(SUICIDE_RISK,) if points.get(ITEM_9, 0) > 0 else ())


SPEC = InstrumentSpec(
    id="phq9",
    title="PHQ-9",
    panel_code="44249-1",
    total_code="44261-6",
    items=ITEMS,
    bands=PHQ_BANDS,
    cut_point=10,
    canonical_tokens=("44249-1", "phq-9", "phq9"),
    total_aliases=("phq9-total", "phq-9-total", "phq9-total-score"),
    judge=judge_item9,
    source="US Core Questionnaire-phq-9-example; Kroenke 2001; Arroll 2010",
)
