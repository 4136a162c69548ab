"""C-SSRS screener, "recent" version (Columbia triage guidelines). Panel 93373-9.

Yes/no items (LA33-6 Yes, LA32-8 No). Q3–Q5 are asked only if Q2 = Yes; 6b only if Q6 = Yes.
No total: the result is a triage risk level by the highest item endorsed (Columbia triage
guidelines; item-based, not a count of yeses — Columbia triage):

- high: Q4 or Q5 = Yes, or Q6 = Yes and 6b = Yes (behavior in the past 3 months);
- moderate: Q3 = Yes, or Q6 = Yes for lifetime only;
- low: only Q1 or Q2 = Yes.

Any Yes raises ``suicide-risk``. An incomplete screener has no risk level, except when the
answers present already reach "high": a missing answer can only raise the level, never lower
it, so that level is certain and a crisis is not lost to a skipped question.
"""

from __future__ import annotations

from collections.abc import Mapping

from bhi_fhir.instruments.result import SUICIDE_RISK
from bhi_fhir.instruments.spec import InstrumentSpec, Item, Judgement

Q1, Q2, Q3, Q4, Q5, Q6, Q6B = (
    "93246-7", "93247-5", "93248-3", "93249-1", "93250-9", "93267-3", "93269-9",
)
RISK_LEVEL = "93374-7"


def _yn(key: str, number: str, text: str, *, required: bool = True) -> Item:
    return Item(key, number, text, (f"cssrs-{number}", f"cssrs-q{number}", f"c-ssrs-{number}"),
                max_points=1, required=required)


ITEMS = (
    _yn(Q1, "1", "Wished you were dead or wished you could go to sleep and not wake up"),
    _yn(Q2, "2", "Had any actual thoughts of killing yourself"),
    _yn(Q3, "3", "Been thinking about how you might do this", required=False),
    _yn(Q4, "4", "Had these thoughts and had some intention of acting on them", required=False),
    _yn(Q5, "5", "Started to work out or worked out the details of how to kill yourself",
        required=False),
    _yn(Q6, "6", "Ever done, started to do, or prepared to do anything to end your life"),
    _yn(Q6B, "6b", "Was this within the past 3 months", required=False),
    Item(RISK_LEVEL, "risk", "Suicide risk level", ("cssrs-risk",), scored=False,
         required=False, derived=True),
)


def risk_level(yes: Mapping[str, bool]) -> str | None:
    """Triage level from the items answered Yes (absent = not answered)."""
    if yes.get(Q4) or yes.get(Q5) or (yes.get(Q6) and yes.get(Q6B)):
        return "high"
    if yes.get(Q3) or yes.get(Q6):
        return "moderate"
    if yes.get(Q1) or yes.get(Q2):
        return "low"
    return None


def judge(
    spec: InstrumentSpec, points: Mapping[str, int], complete: bool, total: int | None,
    sex: str | None, positive: bool | None = None,
) -> Judgement:
    yes = {key: points[key] > 0 for key in (Q1, Q2, Q3, Q4, Q5, Q6, Q6B) if key in points}
    needed = [Q1, Q2, Q6]
    if yes.get(Q2):
        needed += [Q3, Q4, Q5]
    if yes.get(Q6):
        needed.append(Q6B)
    complete = all(key in points for key in needed)
    level = risk_level(yes)
    any_yes = any(yes.values())
    flags = (SUICIDE_RISK,) if any_yes else ()
    if complete:
        return Judgement(severity=level, positive=level is not None, flags=flags, complete=True)
    certain = level if level == "high" else None
    return Judgement(severity=certain, positive=True if any_yes else None, flags=flags,
                     complete=False)


SPEC = InstrumentSpec(
    id="cssrs",
    title="C-SSRS screener (recent)",
    panel_code="93373-9",
    total_code=None,
    items=ITEMS,
    canonical_tokens=("93373-9", "c-ssrs", "cssrs"),
    sums=False,
    judge=judge,
    source="US BH Profiles IG QuestionnaireResponse-C-SSRS-example-1; "
    "Columbia triage guidelines",
)
