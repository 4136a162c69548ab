"""QuestionnaireResponse.status: only ``completed`` and ``amended`` are final (FHIR R4
QuestionnaireResponse, https://hl7.org/fhir/R4/questionnaireresponse.html, status codes
in-progress | completed | amended | entered-in-error | stopped).

A response that is not final is never a screen: no total, band, positive or bounds. A crisis
answer in it is never lost (project rule): ``suicide-risk`` stays, and a C-SSRS "high" level,
which no further answer can lower. ``entered-in-error`` is not scored at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bhi_fhir.instruments import score_response, screening_observations
from bhi_fhir.instruments.cli import JSON_KEYS
from bhi_fhir.instruments.cssrs import Q1, Q2, Q3, Q4, Q5, Q6
from tests.instruments.build import PHQ9, frequency, response, yes_no

PHQ9_Q = "http://loinc.org/q/44249-1"
CSSRS_Q = "http://loinc.org/q/93373-9"
# PHQ-9 total 12 with item 9 = 1: moderate, positive, crisis flag (Kroenke 2001)
PHQ9_12 = frequency(PHQ9, [2, 2, 2, 2, 2, 0, 0, 1, 1])


@pytest.mark.parametrize(
    ("status", "total", "positive", "complete", "not_final"),
    [
        ("completed", 12, True, True, False),
        ("amended", 12, True, True, False),
        ("in-progress", None, None, False, True),
        ("stopped", None, None, False, True),
        (None, None, None, False, True),  # status is 1..1 in FHIR: a response without is not final
    ],
    ids=["completed", "amended", "in-progress", "stopped", "no-status"],
)
def test_only_final_responses_are_screens(status: str | None, total: int | None,
                                          positive: bool | None, complete: bool,
                                          not_final: bool) -> None:
    score = score_response(response(PHQ9_12, canonical=PHQ9_Q, status=status))
    assert score.status == status
    assert (score.total, score.positive, score.complete) == (total, positive, complete)
    assert (score.severity is None) is not_final and (score.bounds is None) is not_final
    assert ("not-final" in score.flags) is not_final
    assert "suicide-risk" in score.flags  # a crisis answer is never lost (Kroenke 2001)
    assert score.final is not not_final


@pytest.mark.parametrize("status", ["in-progress", "stopped", "entered-in-error"])
def test_no_observations_for_a_response_that_is_not_final(status: str) -> None:
    # Screening Observations are results (US Core screening): a draft, abandoned or erroneous
    # response holds none (FHIR R4 QuestionnaireResponse.status).
    qr = response(PHQ9_12, canonical=PHQ9_Q, status=status)
    assert screening_observations(score_response(qr), qr) == []
    final = response(PHQ9_12, canonical=PHQ9_Q, status="amended")
    assert screening_observations(score_response(final), final)


def test_entered_in_error_is_not_scored() -> None:
    score = score_response(response(PHQ9_12, canonical=PHQ9_Q, status="entered-in-error"))
    assert (score.total, score.positive, score.complete, score.bounds) == (None, None, False,
                                                                            None)
    assert score.flags == ("entered-in-error",) and score.status == "entered-in-error"
    qr = response(PHQ9_12, canonical=PHQ9_Q, status="entered-in-error")
    assert screening_observations(score, qr) == []


@pytest.mark.parametrize(
    ("status", "positive"),
    [("completed", True), ("in-progress", None), ("stopped", None)],
)
def test_bound_positive_needs_a_final_response(status: str, positive: bool | None) -> None:
    # 8 PHQ-9 items summing to 10: positive whatever item 9 holds (answered-item bounds), if final.
    items = frequency(PHQ9[:8], [3, 3, 2, 1, 1, 0, 0, 0])
    score = score_response(response(items, canonical=PHQ9_Q, status=status))
    assert score.positive is positive
    assert ("positive-by-bound" in score.flags) is (positive is True)


@pytest.mark.parametrize(
    ("answers", "severity"),
    [
        # Q4 = Yes is "high" (Columbia triage): kept while in progress
        ({Q1: True, Q2: True, Q3: True, Q4: True}, "high"),
        # "moderate"/"low" could still rise: no level, the suicide-risk flag stays
        ({Q1: True, Q2: True, Q3: True, Q4: False, Q5: False, Q6: False}, None),
        ({Q1: True}, None),
    ],
    ids=["q4-yes-high-kept", "moderate-not-kept", "q1-yes-flag-only"],
)
def test_cssrs_in_progress_keeps_the_crisis(answers: dict[str, bool],
                                            severity: str | None) -> None:
    score = score_response(response(yes_no(answers), canonical=CSSRS_Q, status="in-progress"))
    assert (score.severity, score.positive, score.complete) == (severity, None, False)
    assert "suicide-risk" in score.flags and "not-final" in score.flags


def test_bound_decided_screen_carries_its_interpretation_on_the_panel() -> None:
    # Missing items give no total; US Core screening assessment: no total Observation for an
    # incomplete response; the panel says POS.
    qr = response(frequency(PHQ9[:8], [3, 3, 2, 1, 1, 0, 0, 0]), canonical=PHQ9_Q)
    obs = screening_observations(score_response(qr), qr)
    panel = obs[-1]
    assert all(o["code"]["coding"][0]["code"] != "44261-6" for o in obs)
    assert panel["status"] == "preliminary"
    assert [i["coding"][0]["code"] for i in panel["interpretation"]] == ["POS"]


def test_score_json_carries_status_and_bounds(tmp_path: Path) -> None:
    qrs = [response(PHQ9_12, canonical=PHQ9_Q, rid="final"),
           response(PHQ9_12, canonical=PHQ9_Q, rid="draft", status="in-progress"),
           response(frequency(PHQ9[:8], [3, 3, 2, 1, 1, 0, 0, 0]), canonical=PHQ9_Q,
                    rid="partial")]
    path = tmp_path / "qrs.ndjson"
    path.write_text("\n".join(json.dumps(qr) for qr in qrs) + "\n")
    result = subprocess.run([sys.executable, "-m", "bhi_fhir", "score", str(path), "--format",
                             "json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rows = {r["questionnaireResponse"].split("/")[1]: r for r in json.loads(result.stdout)}
    assert all(tuple(r) == JSON_KEYS for r in rows.values())
    assert (rows["final"]["status"], rows["final"]["total"], rows["final"]["totalAtLeast"]) == (
        "completed", 12, 12)
    assert (rows["draft"]["status"], rows["draft"]["positive"]) == ("in-progress", None)
    assert "not-final" in rows["draft"]["flags"]
    partial = rows["partial"]
    assert (partial["total"], partial["positive"], partial["complete"]) == (None, True, False)
    assert (partial["totalAtLeast"], partial["totalAtMost"]) == (10, 13)
    assert "positive-by-bound" in partial["flags"]
