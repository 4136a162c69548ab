"""apply: a screen is a screen however it is stored, counted once.

Sources: Synthea 3.3 output (DiagnosticReport 44249-1 + one total Observation
44261-6, no items, so nothing is known about item 9), US Core screening (our own Observations
derivedFrom the response), (PHQ-9 15 is positive, cut point 10, Kroenke 2001).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.workflow.pipeline import run_apply
from tests.instruments.screen_records import derived_observations, phq9_response, synthea_screen

from .helpers import ROOT

WHEN = "2026-11-02T10:00:00Z"
TODAY = date(2026, 11, 5)
ASK = "(total only, suicide item not recorded: ask it)"
QR = phq9_response("p1", WHEN)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


@pytest.mark.parametrize(("resources", "source", "asks"), [
    pytest.param([QR], "QuestionnaireResponse/qr-1", False, id="response-only"),
    pytest.param(synthea_screen("p1", WHEN), "DiagnosticReport/dr-1", True, id="synthea-only"),
    pytest.param([QR, *derived_observations(QR)], "QuestionnaireResponse/qr-1", False,
                 id="response-and-own-observations-US-Core-screening"),
    pytest.param([QR, *derived_observations(QR), *synthea_screen("p1", WHEN)],
                 "QuestionnaireResponse/qr-1", False, id="stored-three-ways"),
])
def test_one_screen_one_engagement(tmp_path: Path, resources: list[dict[str, Any]],
                                   source: str, asks: bool) -> None:
    (tmp_path / "records.ndjson").write_text(
        "".join(json.dumps(r) + "\n" for r in [PATIENT, *resources]))
    report = run_apply([tmp_path], load_practice_plan(ROOT / "examples" / "practice-plan.toml"),
                       TODAY)
    assert report.errors == []
    (plan,) = report.plans
    engage = [w for w in plan.writes if w.rule == "engage"]
    assert len(engage) == 1  # one screen, however many records hold it
    assert engage[0].reason.startswith("PHQ-9 15 on 2026-11-02 is a positive screen")
    assert [s.split("/_history/")[0] for s in engage[0].sources] == [source]
    # A total alone is never "no suicide risk": the clinician is asked, on every write it drives.
    driven = [w for w in plan.writes if w.rule in ("engage", "consent", "enroll")]
    assert driven and all((ASK in w.reason) is asks for w in driven)
    assert not [w for w in plan.writes if w.rule.startswith("crisis")]
