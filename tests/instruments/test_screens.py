"""screening_scores: one Score per screen, however the screen is stored; table-driven.

Sources: Synthea 3.3 output (DiagnosticReport 44249-1 + total Observation 44261-6,
no items, so nothing is known about item 9), (US Core screening assessments, derivedFrom
the response), (PHQ-9 bands and cut point 10, Kroenke 2001; item 9 > 0 is a crisis).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bhi_fhir.instruments.screens import (
    ScreenMerger,
    is_screening_resource,
    screen_source,
    screening_scores,
)
from bhi_fhir.timeline import build_timeline
from tests.instruments.screen_records import (
    TOTAL,
    derived_observations,
    phq9_response,
    synthea_screen,
)

WHEN = "2026-11-02T10:00:00Z"
QR = phq9_response("p-1", WHEN)
SYNTHEA = synthea_screen("p-1", WHEN)


@pytest.mark.parametrize(("resources", "sources"), [
    pytest.param([QR], [None], id="response-only"),
    pytest.param(SYNTHEA, ["DiagnosticReport/dr-1"], id="synthea-only-Synthea-3-3"),
    pytest.param([QR, *derived_observations(QR)], [None],
                 id="response-and-own-observations-US-Core-screening"),
    pytest.param([QR, *SYNTHEA], [None], id="response-and-synthea-same-day-and-total"),
    pytest.param([*SYNTHEA, QR, *derived_observations(QR)], [None], id="all-three-once"),
    pytest.param([QR, *synthea_screen("p-1", "2026-11-03T10:00:00Z")],
                 [None, "DiagnosticReport/dr-1"], id="next-day-is-another-screen"),
    pytest.param([QR, *synthea_screen("p-1", WHEN, total=TOTAL - 1)],
                 [None, "DiagnosticReport/dr-1"], id="other-total-is-another-screen"),
])
def test_one_score_per_screen(resources: list[dict[str, Any]], sources: list[str | None]) -> None:
    scores = screening_scores(resources)
    assert sorted(map(str, (screen_source(s) for s in scores))) == sorted(map(str, sources))
    assert all((s.instrument, s.severity, s.positive) == ("phq9", "moderately-severe", True)
               for s in scores if s.total == TOTAL)


def test_total_only_is_banded_but_the_suicide_item_is_unknown() -> None:
    (score,) = screening_scores(SYNTHEA)
    assert (score.total, score.positive, score.suicide_risk) == (TOTAL, True, False)
    assert "suicide-item-unknown" in score.flags
    timeline = build_timeline("Patient/p-1", SYNTHEA, [score], date(2026, 11, 5))
    (fact,) = timeline.facts["scores"]
    # Unknown, not "no risk": the fact says so, and no crisis is invented either.
    assert fact["suicideItemUnknown"] is True and fact["source"] == "DiagnosticReport/dr-1"
    assert timeline.facts["crises"] == []
    (from_response,) = build_timeline("Patient/p-1", [QR], screening_scores([QR]),
                                      date(2026, 11, 5)).facts["scores"]
    assert "suicideItemUnknown" not in from_response


def test_an_unreadable_response_goes_to_on_error_and_the_rest_is_kept() -> None:
    broken = {**QR, "id": "bad", "item": "not a list"}
    seen: list[str] = []
    scores = screening_scores([broken, *SYNTHEA],
                              on_error=lambda r, exc: seen.append(str(r.get("id"))))
    if seen:  # the scorer may also read it as unrecognised; either way the screen is kept
        assert seen == ["bad"]
    assert [screen_source(s) for s in scores if s.instrument] == ["DiagnosticReport/dr-1"]


@pytest.mark.parametrize(("resource", "kept"), [
    pytest.param(SYNTHEA[0], True, id="synthea-report-panel-code-Synthea-3-3"),
    pytest.param(SYNTHEA[1], True, id="synthea-total-Synthea-3-3"),
    pytest.param({"resourceType": "Observation", "category": SYNTHEA[1]["category"],
                  "code": {"text": "mood"}}, True, id="survey-category-US-Core-screening"),
    pytest.param({"resourceType": "Observation",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}},
                 False, id="heart-rate-is-not-a-screen"),
    pytest.param(QR, False, id="a-response-is-not-buffered"),
])
def test_what_score_keeps_in_memory(resource: dict[str, Any], kept: bool) -> None:
    assert is_screening_resource(resource) is kept


def test_merger_one_response_at_a_time_matches_the_batch() -> None:
    own = derived_observations(QR)
    anonymous = [{k: v for k, v in r.items() if k != "subject"} for r in SYNTHEA]
    other = synthea_screen("p-2", WHEN, rid="dr-2", oid="obs-2")  # another patient
    for resources in ([*SYNTHEA], [*own], [*SYNTHEA, *own], anonymous, other,
                      [*other, *SYNTHEA]):
        merger = ScreenMerger(resources)
        (response,) = screening_scores([QR])
        merger.absorb(response)
        assert merger.remaining() == [s for s in screening_scores([QR, *resources])
                                      if screen_source(s)]
