"""Table-driven scoring tests. Every row cites its public source."""

from __future__ import annotations

import pytest

from bhi_fhir.instruments import score_response
from bhi_fhir.instruments.cssrs import Q1, Q2, Q3, Q4, Q5, Q6, Q6B
from tests.instruments.build import (
    EPDS,
    GAD7,
    PHQ9,
    PHQA,
    audit,
    coding,
    frequency,
    integers,
    response,
    spread,
    yes_no,
)

PHQ9_Q = "http://loinc.org/q/44249-1"


# --- PHQ-9 (bands 0-4/5-9/10-14/15-19/20-27, Kroenke 2001; positive >= 10, Arroll 2010)
@pytest.mark.parametrize(
    ("total", "severity", "positive"),
    [
        (0, "none-minimal", False),  # Kroenke 2001 lower bound
        (4, "none-minimal", False),  # Kroenke 2001 cut point 5
        (5, "mild", False),
        (9, "mild", False),  # Kroenke 2001 positive at >= 10 (HEDIS DSF)
        (10, "moderate", True),
        (14, "moderate", True),  # Kroenke 2001 cut point 15
        (15, "moderately-severe", True),
        (19, "moderately-severe", True),  # Kroenke 2001 cut point 20
        (20, "severe", True),
        (27, "severe", True),  # Kroenke 2001 range 0-27
    ],
)
def test_phq9_bands(total: int, severity: str, positive: bool) -> None:
    points = [*spread(total, 8), 0] if total <= 24 else spread(total, 9)
    score = score_response(response(frequency(PHQ9, points), canonical=PHQ9_Q))
    assert (score.instrument, score.total, score.severity, score.positive, score.complete) == (
        "phq9", total, severity, positive, True)


@pytest.mark.parametrize(
    ("item9", "flagged"),
    [(0, False), (1, True), (2, True), (3, True)],  # Kroenke 2001: any answer above 0 on item 9
)
def test_phq9_item9_flags_whatever_the_total(item9: int, flagged: bool) -> None:
    score = score_response(response(frequency(PHQ9, [0] * 8 + [item9]), canonical=PHQ9_Q))
    assert score.total == item9
    assert ("suicide-risk" in score.flags) is flagged


def test_incomplete_phq9_is_unscorable_but_item9_still_flags() -> None:
    # Missing items: incomplete, no total, no band, but the item-9 flag is raised.
    items = [i for i in frequency(PHQ9, [1] * 8 + [1]) if i["linkId"] != "/44251-7"]
    score = score_response(response(items, canonical=PHQ9_Q))
    assert score.instrument == "phq9"
    assert (score.total, score.severity, score.positive, score.complete) == (None, None, None,
                                                                              False)
    assert "suicide-risk" in score.flags and "incomplete" in score.flags


def test_phq9_difficulty_item_not_in_total() -> None:
    # LOINC: 69722-7 functional difficulty is not part of the total.
    items = [*frequency(PHQ9, [1] * 9), {"linkId": "/69722-7", "answer": [coding("LA6575-0")]}]
    assert score_response(response(items, canonical=PHQ9_Q)).total == 9


# --- PHQ-2 (Arroll 2010: items 44250-9, 44255-8; positive >= 3, configurable)
@pytest.mark.parametrize(
    ("points", "positive", "cut"),
    [([1, 1], False, None), ([2, 1], True, None), ([3, 3], True, None),  # Arroll 2010 default 3
     ([1, 1], True, 2)],  # Arroll 2010: >= 2 is the sensitive alternative
)
def test_phq2(points: list[int], positive: bool, cut: int | None) -> None:
    qr = response(frequency(PHQ9[:2], points))  # no canonical: recognised by its items
    score = score_response(qr, cut_points={"phq2": cut} if cut else None)
    assert (score.instrument, score.total, score.positive) == ("phq2", sum(points), positive)


# --- PHQ-A (NIMH ASQ: items 1 and 2 swapped vs PHQ-9; same bands; suicide Y/N items)
def test_phqa_recognised_by_linkids_not_position() -> None:
    score = score_response(response(integers(list(reversed(PHQA)), [0] * 8 + [3])))
    # Reversed order: "phqa-1" got 3 points; it is item 1 by linkId, not by position.
    assert (score.instrument, score.total, score.items["phqa-1"]) == ("phqa", 3, 3)
    assert "suicide-risk" not in score.flags


@pytest.mark.parametrize(
    ("extra", "item9", "flagged", "source"),
    [
        ({"phqa-serious-thoughts": True}, 0, True, "NIMH ASQ yes to serious thoughts"),
        ({"phqa-attempt": True}, 0, True, "NIMH ASQ yes to ever attempted"),
        ({"phqa-serious-thoughts": False, "phqa-attempt": False}, 0, False, "NIMH ASQ"),
        ({}, 1, True, "Kroenke 2001/NIMH ASQ item 9 above 0"),
    ],
)
def test_phqa_suicide_items(extra: dict[str, bool], item9: int, flagged: bool,
                            source: str) -> None:
    items = frequency(PHQA, [1] * 8 + [item9], prefix="") + yes_no(extra)
    score = score_response(response(items))
    assert score.instrument == "phqa", source
    assert ("suicide-risk" in score.flags) is flagged, source


@pytest.mark.parametrize(("total", "positive"), [(9, False), (10, True)])  # NIMH ASQ >= 10
def test_phqa_cut_point(total: int, positive: bool) -> None:
    score = score_response(response(frequency(PHQA, [*spread(total, 8), 0], prefix="")))
    assert (score.total, score.positive) == (total, positive)


# --- GAD-7 (bands 0-4/5-9/10-14/15-21; positive >= 10, Spitzer 2006)
@pytest.mark.parametrize(
    ("total", "severity", "positive"),
    [(4, "minimal", False), (5, "mild", False), (9, "mild", False), (10, "moderate", True),
     (14, "moderate", True), (15, "severe", True), (21, "severe", True)],
)
def test_gad7_bands(total: int, severity: str, positive: bool) -> None:
    score = score_response(response(frequency(GAD7, spread(total, 7))))
    assert (score.instrument, score.total, score.severity, score.positive) == (
        "gad7", total, severity, positive)
    assert "suicide-risk" not in score.flags  # Spitzer 2006: GAD-7 has no suicide item


def test_gad7_more_days_than_not_is_two_points() -> None:
    # LOINC LL358-3: LA18938-3 "More days than not" in the 2-point slot of item 2.
    items = frequency(GAD7, [0] * 7)
    items[1]["answer"] = [coding("LA18938-3")]
    assert score_response(response(items)).total == 2


# Spitzer 2006 >= 3
@pytest.mark.parametrize(("points", "positive"), [([1, 1], False), ([2, 1], True)])
def test_gad2(points: list[int], positive: bool) -> None:
    score = score_response(response(frequency(GAD7[:2], points)))
    assert (score.instrument, score.total, score.positive) == ("gad2", sum(points), positive)


# --- C-SSRS screener (Columbia triage: highest item endorsed)
@pytest.mark.parametrize(
    ("answers", "level", "complete"),
    [
        ({Q1: False, Q2: False, Q6: False}, None, True),  # no risk
        ({Q1: True, Q2: False, Q6: False}, "low", True),  # Columbia triage low: only Q1 or Q2
        ({Q1: True, Q2: True, Q3: False, Q4: False, Q5: False, Q6: False}, "low", True),
        ({Q1: True, Q2: True, Q3: True, Q4: False, Q5: False, Q6: False}, "moderate", True),
        ({Q1: True, Q2: True, Q3: True, Q4: True, Q5: False, Q6: False}, "high", True),  # Q4
        ({Q1: True, Q2: True, Q3: False, Q4: False, Q5: True, Q6: False}, "high", True),  # Q5
        ({Q1: False, Q2: False, Q6: True, Q6B: False}, "moderate", True),  # lifetime behaviour
        ({Q1: False, Q2: False, Q6: True, Q6B: True}, "high", True),  # behaviour <= 3 months
        # Incomplete: Q2 yes but Q3-Q5 unanswered -> no level, flag kept (design: an unanswered item
        # is unknown).
        ({Q1: True, Q2: True, Q6: False}, None, False),
        # Incomplete but already high: a missing answer can only raise it.
        ({Q1: True, Q2: True, Q4: True}, "high", False),
    ],
)
def test_cssrs_triage(answers: dict[str, bool], level: str | None, complete: bool) -> None:
    score = score_response(response(yes_no(answers), canonical="http://loinc.org/q/93373-9"))
    assert (score.instrument, score.total, score.severity, score.complete) == (
        "cssrs", None, level, complete)
    assert ("suicide-risk" in score.flags) is any(answers.values())


# --- AUDIT-C (US Core AUDIT-C: >= 4 men, >= 3 women, lower cut point when sex unknown)
@pytest.mark.parametrize(
    ("points", "sex", "positive"),
    [((2, 1, 0), "female", True), ((2, 0, 0), "female", False), ((2, 1, 0), "male", False),
     ((2, 1, 1), "male", True), ((2, 1, 0), None, True), ((1, 1, 0), None, False),
     ((4, 4, 4), "male", True)],
)
def test_auditc_cut_point_by_sex(points: tuple[int, int, int], sex: str | None,
                                 positive: bool) -> None:
    score = score_response(response(audit(*points)), patient_sex=sex)
    assert (score.instrument, score.total, score.positive) == ("auditc", sum(points), positive)


def test_auditc_points_from_q1_only_and_68517_2_not_added() -> None:
    # US Core AUDIT-C: Q2 = Q3 = 0 -> probably within limits; 68517-2 is a different screen.
    items = [*audit(4, 0, 0), {"linkId": "/68517-2", "answer": [{"valueInteger": 12}]}]
    score = score_response(response(items), patient_sex="male")
    assert (score.total, score.positive) == (4, True)
    assert "points-from-q1-only" in score.flags


# --- EPDS (HEDIS DSF-E: positive >= 10; >= 13 probable; item 10 above 0 is a safety flag)
@pytest.mark.parametrize(
    ("total", "severity", "positive"),
    [(9, "below-threshold", False), (10, "possible-depression", True),
     (12, "possible-depression", True), (13, "probable-depression", True)],
)
def test_epds_bands(total: int, severity: str, positive: bool) -> None:
    score = score_response(response(integers(EPDS, [*spread(total, 9), 0])))
    assert (score.instrument, score.total, score.severity, score.positive) == (
        "epds", total, severity, positive)
    assert "suicide-risk" not in score.flags


def test_epds_item10_flags() -> None:
    score = score_response(response(integers(EPDS, [0] * 9 + [1])))
    assert score.total == 1 and "suicide-risk" in score.flags
