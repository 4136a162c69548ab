"""Certain results of incomplete sum scales (each missing item adds at least 0
and at most its maximum).

An incomplete response has no total and no band. Its answered items bound the total: at least
their sum (every missing item 0), at most that plus every missing item's maximum. When the
lower bound reaches the cut point the screen is positive whatever the missing items hold; when
the upper bound cannot reach it, negative; otherwise undecided. Every boundary is tested on
both sides; each row names the cut point's source.
"""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.instruments import score_response
from bhi_fhir.instruments.result import InstrumentId
from tests.instruments.build import (
    EPDS,
    GAD7,
    PHQ9,
    PHQA,
    audit,
    frequency,
    integers,
    response,
    spread,
)

POS, NEG = "positive-by-bound", "negative-by-bound"
PHQ9_Q = "http://loinc.org/q/44249-1"
PHQA_Q = "https://bhi-fhir.dev/fhir/Questionnaire/phqa"
GAD2_Q = "https://bhi-fhir.dev/fhir/Questionnaire/gad2"
PHQ2_Q = "http://loinc.org/q/55757-9"


def answered(keys: list[str], points: list[int], build: Any = frequency) -> list[dict[str, Any]]:
    """The first len(points) items of an instrument answered; the rest missing."""
    return list(build(keys[: len(points)], points))


# (items, canonical, sex, cut override) -> (positive, flag, bounds)
ROWS = [
    # PHQ-9, cut point 10 (Kroenke 2001; Arroll 2010; HEDIS DSF), one item (max 3) missing
    pytest.param(answered(PHQ9, [3, 3, 2, 1, 0, 0, 0, 0]), PHQ9_Q, None, None,
                 None, None, (9, 12), id="phq9-8-items-9-undecided"),
    pytest.param(answered(PHQ9, [3, 3, 2, 1, 1, 0, 0, 0]), PHQ9_Q, None, None,
                 True, POS, (10, 13), id="phq9-8-items-10-positive"),
    pytest.param(answered(PHQ9, [3, 3, 1, 0, 0, 0, 0, 0]), PHQ9_Q, None, None,
                 None, None, (7, 10), id="phq9-8-items-7-undecided"),
    pytest.param(answered(PHQ9, [3, 3, 0, 0, 0, 0, 0, 0]), PHQ9_Q, None, None,
                 False, NEG, (6, 9), id="phq9-8-items-6-negative"),
    # two items missing (max 6 between them)
    pytest.param(answered(PHQ9, [2, 2, 0, 0, 0, 0, 0]), PHQ9_Q, None, None,
                 None, None, (4, 10), id="phq9-7-items-4-undecided"),
    pytest.param(answered(PHQ9, [2, 1, 0, 0, 0, 0, 0]), PHQ9_Q, None, None,
                 False, NEG, (3, 9), id="phq9-7-items-3-negative"),
    # the practice plan's cut point replaces 10 (Arroll 2010 reports two PHQ-2 cut points)
    pytest.param(answered(PHQ9, [3, 3, 3, 2, 0, 0, 0, 0]), PHQ9_Q, None, 12,
                 None, None, (11, 14), id="phq9-cut-12-at-11-undecided"),
    pytest.param(answered(PHQ9, [3, 3, 3, 3, 0, 0, 0, 0]), PHQ9_Q, None, 12,
                 True, POS, (12, 15), id="phq9-cut-12-at-12-positive"),
    pytest.param(answered(PHQ9, [3, 3, 3, 0, 0, 0, 0, 0]), PHQ9_Q, None, 12,
                 None, None, (9, 12), id="phq9-cut-12-at-9-undecided"),
    pytest.param(answered(PHQ9, [3, 3, 2, 0, 0, 0, 0, 0]), PHQ9_Q, None, 12,
                 False, NEG, (8, 11), id="phq9-cut-12-at-8-negative"),
    # PHQ-A, items by linkId, cut point 10 (NIMH ASQ PHQ-A; HEDIS DSF PHQ-9M >= 10)
    pytest.param(answered(PHQA, [3, 3, 2, 1, 0, 0, 0, 0]), PHQA_Q, None, None,
                 None, None, (9, 12), id="phqa-8-items-9-undecided"),
    pytest.param(answered(PHQA, [3, 3, 3, 1, 0, 0, 0, 0]), PHQA_Q, None, None,
                 True, POS, (10, 13), id="phqa-8-items-10-positive"),
    pytest.param(answered(PHQA, [3, 3, 0, 0, 0, 0, 0, 0]), PHQA_Q, None, None,
                 False, NEG, (6, 9), id="phqa-8-items-6-negative"),
    # GAD-7, cut point 10 (Spitzer 2006)
    pytest.param(answered(GAD7, [3, 3, 3, 0, 0, 0]), None, None, None,
                 None, None, (9, 12), id="gad7-6-items-9-undecided"),
    pytest.param(answered(GAD7, [3, 3, 3, 1, 0, 0]), None, None, None,
                 True, POS, (10, 13), id="gad7-6-items-10-positive"),
    pytest.param(answered(GAD7, [3, 3, 1, 0, 0, 0]), None, None, None,
                 None, None, (7, 10), id="gad7-6-items-7-undecided"),
    pytest.param(answered(GAD7, [3, 3, 0, 0, 0, 0]), None, None, None,
                 False, NEG, (6, 9), id="gad7-6-items-6-negative"),
    # GAD-2, cut point 3 (Kroenke 2007): one answered item decides only at 3
    pytest.param(answered(GAD7[:2], [2]), GAD2_Q, None, None,
                 None, None, (2, 5), id="gad2-item1-2-undecided"),
    pytest.param(answered(GAD7[:2], [3]), GAD2_Q, None, None,
                 True, POS, (3, 6), id="gad2-item1-3-positive"),
    # PHQ-2, cut point 3 (Arroll 2010); the practice plan may lower it to 2
    pytest.param(answered(PHQ9[:2], [2]), PHQ2_Q, None, None,
                 None, None, (2, 5), id="phq2-item1-2-undecided"),
    pytest.param(answered(PHQ9[:2], [3]), PHQ2_Q, None, None,
                 True, POS, (3, 6), id="phq2-item1-3-positive"),
    pytest.param(answered(PHQ9[:2], [1]), PHQ2_Q, None, 2,
                 None, None, (1, 4), id="phq2-cut-2-at-1-undecided"),
    pytest.param(answered(PHQ9[:2], [2]), PHQ2_Q, None, 2,
                 True, POS, (2, 5), id="phq2-cut-2-at-2-positive"),
    # EPDS, cut point 10 (Cox 1987; HEDIS DSF EPDS >= 10), integer items 0-3
    pytest.param(answered(EPDS, [3, 3, 3, 0, 0, 0, 0, 0, 0], integers), None, None, None,
                 None, None, (9, 12), id="epds-9-items-9-undecided"),
    pytest.param(answered(EPDS, [3, 3, 3, 1, 0, 0, 0, 0, 0], integers), None, None, None,
                 True, POS, (10, 13), id="epds-9-items-10-positive"),
    pytest.param(answered(EPDS, [3, 3, 1, 0, 0, 0, 0, 0, 0], integers), None, None, None,
                 None, None, (7, 10), id="epds-9-items-7-undecided"),
    pytest.param(answered(EPDS, [3, 3, 0, 0, 0, 0, 0, 0, 0], integers), None, None, None,
                 False, NEG, (6, 9), id="epds-9-items-6-negative"),
    # AUDIT-C, >= 4 men, >= 3 women, unknown sex the lower 3 (US Core Questionnaire-AUDIT-C);
    # Q2 missing (max 4)
    pytest.param(audit(3, None, 0), None, "female", None,
                 True, POS, (3, 7), id="auditc-female-3-positive"),
    pytest.param(audit(2, None, 0), None, "female", None,
                 None, None, (2, 6), id="auditc-female-2-undecided"),
    pytest.param(audit(3, None, 0), None, "male", None,
                 None, None, (3, 7), id="auditc-male-3-undecided"),
    pytest.param(audit(4, None, 0), None, "male", None,
                 True, POS, (4, 8), id="auditc-male-4-positive"),
    pytest.param(audit(3, None, 0), None, None, None,
                 True, POS, (3, 7), id="auditc-unknown-sex-3-positive"),
    pytest.param(audit(2, None, 0), None, None, None,
                 None, None, (2, 6), id="auditc-unknown-sex-2-undecided"),
    pytest.param(audit(None, 2, 2), None, "male", None,
                 True, POS, (4, 8), id="auditc-q1-missing-male-4-positive"),
]


@pytest.mark.parametrize(("items", "canonical", "sex", "cut", "positive", "flag", "bounds"),
                         ROWS)
def test_incomplete_screen_decided_by_bounds(
    items: list[dict[str, Any]], canonical: str | None, sex: str | None, cut: int | None,
    positive: bool | None, flag: str | None, bounds: tuple[int, int],
) -> None:
    qr = response(items, canonical=canonical)
    probe = score_response(qr)
    assert probe.instrument is not None
    cut_points: dict[InstrumentId, int] | None = (
        {probe.instrument: cut} if cut is not None else None
    )
    score = score_response(qr, patient_sex=sex, cut_points=cut_points)
    # answered-item bounds
    assert (score.total, score.severity, score.complete) == (None, None, False)
    assert (score.positive, score.bounds) == (positive, bounds)
    assert "incomplete" in score.flags
    assert {POS, NEG} & set(score.flags) == ({flag} if flag else set())


@pytest.mark.parametrize(("total", "positive"), [(9, False), (10, True)],
                         ids=["total-9-negative", "total-10-positive"])
def test_complete_screen_is_not_a_bound(total: int, positive: bool) -> None:
    # A complete PHQ-9 has a total (cut point 10, Kroenke 2001; Arroll 2010), bounds
    # (total, total) and no bound flag.
    score = score_response(response(frequency(PHQ9, spread(total, 9)), canonical=PHQ9_Q))
    assert (score.complete, score.total, score.positive) == (True, total, positive)
    assert score.bounds == (total, total)
    assert not {POS, NEG} & set(score.flags)


def test_cssrs_has_no_bounds() -> None:
    # The C-SSRS screener has a risk level, not a total (Columbia triage): no bounds.
    from bhi_fhir.instruments.cssrs import Q1, Q2, Q6
    from tests.instruments.build import yes_no

    score = score_response(response(yes_no({Q1: False, Q2: False, Q6: False}),
                                    canonical="http://loinc.org/q/93373-9"))
    assert score.bounds is None and score.complete


def test_item9_flag_survives_a_negative_bound() -> None:
    # Kroenke 2001: item 9 above 0 is a crisis flag whatever the total, decided or not.
    items = answered(PHQ9, [0, 0, 0, 0, 0, 0, 0]) + frequency(PHQ9[8:], [1])
    score = score_response(response(items, canonical=PHQ9_Q))
    assert (score.positive, score.bounds) == (False, (1, 4))
    assert "suicide-risk" in score.flags and NEG in score.flags
