"""PHQ-A — PHQ-9 Modified for Adolescents / PHQ-9M (NIMH ASQ toolkit).

Panel 89206-7, total 89204-2; items 1–9 sum to 0–27 with the PHQ-9 bands; total >= 10 points
to major depression. The item ORDER differs from the adult PHQ-9: item 1 is "down, depressed,
irritable, or hopeless", item 2 "little interest" (NIMH ASQ toolkit). Item-level LOINC codes
are UNVERIFIED, so items are keyed by this project's linkIds (``profiles/questionnaires/
phqa.json``); never by position. Item 9 above 0, or "yes" to either suicide question (serious
thoughts of ending your life in the past month; ever attempted suicide) → ``suicide-risk``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bhi_fhir.instruments.result import SUICIDE_RISK
from bhi_fhir.instruments.spec import PHQ_BANDS, InstrumentSpec, Item, Judgement

ITEM_9 = "phqa-9"
SERIOUS_THOUGHTS = "phqa-serious-thoughts"
EVER_ATTEMPTED = "phqa-attempt"


def _i(n: int, text: str) -> Item:
    return Item(f"phqa-{n}", str(n), text, (f"phqa-item-{n}", f"phq-a-{n}", f"phq9m-{n}"))


ITEMS = (
    _i(1, "Feeling down, depressed, irritable, or hopeless"),
    _i(2, "Little interest or pleasure in doing things"),
    _i(3, "Trouble falling asleep, staying asleep, or sleeping too much"),
    _i(4, "Poor appetite, weight loss, or overeating"),
    _i(5, "Feeling tired, or having little energy"),
    _i(6, "Feeling bad about yourself"),
    _i(7, "Trouble concentrating on things"),
    _i(8, "Moving or speaking slowly, or being fidgety or restless"),
    _i(9, "Thoughts that you would be better off dead, or of hurting yourself"),
    Item("phqa-past-year", "10", "Felt depressed or sad most days in the past year", (),
         scored=False, max_points=1, required=False),
    Item("phqa-difficulty", "11", "How difficult have these problems made it", (),
         scored=False, required=False),
    Item(SERIOUS_THOUGHTS, "12", "Serious thoughts about ending your life in the past month",
         (), scored=False, max_points=1, required=False),
    Item(EVER_ATTEMPTED, "13", "Ever tried to kill yourself or made a suicide attempt", (),
         scored=False, max_points=1, required=False),
)


def judge(
    spec: InstrumentSpec, points: Mapping[str, int], complete: bool, total: int | None,
    sex: str | None, positive: bool | None = None,
) -> Judgement:
    risk = (
        points.get(ITEM_9, 0) > 0
        or points.get(SERIOUS_THOUGHTS, 0) > 0
        or points.get(EVER_ATTEMPTED, 0) > 0
    )
    return Judgement(flags=(SUICIDE_RISK,) if risk else ())


SPEC = InstrumentSpec(
    id="phqa",
    title="PHQ-A (PHQ-9 modified for adolescents)",
    panel_code="89206-7",
    total_code="89204-2",
    items=ITEMS,
    bands=PHQ_BANDS,
    cut_point=10,
    canonical_tokens=("89206-7", "phq-a", "phqa", "phq-9m", "phq9m", "phq-9-modified"),
    total_aliases=("phqa-total",),
    judge=judge,
    source="NIMH ASQ toolkit PHQ-A; PACIO representative assessments",
)
