"""AUDIT-C — alcohol use, 3 items. Panel 72109-2, total 75626-2, 0–12.

Positive at >= 4 for men and >= 3 for women (US Core Questionnaire-AUDIT-C); when the
patient's sex is not known the lower cut point (3) is used, so a positive screen is not missed.
Skip logic: "Never" (0) on Q1 skips Q2 and Q3 (WHO AUDIT guidelines, Babor et al.
2001); they are then not missing and count 0, so the screen is complete, total 0.
When every point comes from Q1 (Q2 = Q3 = 0) drinking is probably within limits: flagged
``points-from-q1-only`` for the clinician. 68517-2 (days with X+ drinks) is a different single
question screen: accepted in a response, never added into the AUDIT-C total (US Core AUDIT-C
example).
"""

from __future__ import annotations

from collections.abc import Mapping

from bhi_fhir.cut_points import SexCutPoints
from bhi_fhir.instruments.spec import InstrumentSpec, Item, Judgement

Q1, Q2, Q3 = "68518-0", "68519-8", "68520-6"
SINGLE_QUESTION_SCREEN = "68517-2"
CUT_POINT_MALE = 4
CUT_POINT_FEMALE = 3
Q1_ONLY = "points-from-q1-only"

ITEMS = (
    Item(Q1, "1", "How often do you have a drink containing alcohol", ("auditc-1", "audit-c-1"),
         max_points=4),
    Item(Q2, "2", "How many standard drinks on a typical day when drinking",
         ("auditc-2", "audit-c-2"), max_points=4),
    Item(Q3, "3", "How often do you have six or more drinks on one occasion",
         ("auditc-3", "audit-c-3"), max_points=4),
    Item(SINGLE_QUESTION_SCREEN, "x", "Days in the past year with X or more drinks", (),
         scored=False, max_points=366, required=False),
)


# The default; a practice plan's screening.auditc_positive_male/female replace it.
cut_point = SexCutPoints(male=CUT_POINT_MALE, female=CUT_POINT_FEMALE)


def skipped(points: Mapping[str, int]) -> frozenset[str]:
    """Q2 and Q3 are not asked after "Never" on Q1 (Babor 2001)."""
    return frozenset((Q2, Q3)) if points.get(Q1) == 0 else frozenset()


def judge(
    spec: InstrumentSpec, points: Mapping[str, int], complete: bool, total: int | None,
    sex: str | None, positive: bool | None = None,
) -> Judgement:
    verdict = None
    if positive is None and total is not None:  # a caller that left the cut point to us
        verdict = positive = total >= cut_point(sex)
    q1_only = bool(positive) and points.get(Q2) == 0 and points.get(Q3) == 0
    return Judgement(positive=verdict, flags=(Q1_ONLY,) if q1_only else ())


SPEC = InstrumentSpec(
    id="auditc",
    title="AUDIT-C",
    panel_code="72109-2",
    total_code="75626-2",
    items=ITEMS,
    cut_point_by_sex=cut_point,
    canonical_tokens=("72109-2", "audit-c", "auditc"),
    total_aliases=("auditc-total", "audit-c-total"),
    judge=judge,
    skipped=skipped,
    source="US Core Questionnaire-AUDIT-C; Babor 2001",
)
