"""The app's view model sees the screens apply and sync see.

Sources: Synthea 3.3 output (DiagnosticReport 44249-1 + one total Observation
44261-6, no items: nothing is known about item 9), US Core screening (our own Observations
derivedFrom the response), (PHQ-9 15: moderately severe, Kroenke 2001).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from smart_app.views_model import patient_view, registry_row
from tests.instruments.screen_records import derived_observations, phq9_response, synthea_screen

WHEN = "2026-11-02T10:00:00Z"
TODAY = date(2026, 11, 5)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
QR = phq9_response("p1", WHEN)


@pytest.mark.parametrize(("resources", "source", "unknown"), [
    pytest.param([QR], "QuestionnaireResponse/qr-1", False, id="response-only"),
    pytest.param(synthea_screen("p1", WHEN), "DiagnosticReport/dr-1", True,
                 id="synthea-only-Synthea-3-3"),
    pytest.param([QR, *derived_observations(QR)], "QuestionnaireResponse/qr-1", False,
                 id="response-and-own-US-Core-screening"),
    pytest.param([QR, *derived_observations(QR), *synthea_screen("p1", WHEN)],
                 "QuestionnaireResponse/qr-1", False, id="stored-three-ways"),
])
def test_one_point_per_screen(resources: list[dict[str, Any]], source: str,
                              unknown: bool) -> None:
    view = patient_view([PATIENT, *resources], TODAY, None)
    assert view.series["phq9"] == [
        {"date": "2026-11-02", "total": 15, "severity": "moderately-severe"}]
    (fact,) = view.facts["scores"]
    assert bool(fact.get("suicideItemUnknown")) is unknown
    assert fact["source"] == source  # the name apply and sync key their writes on
    row = registry_row([PATIENT, *resources], TODAY, None)
    assert row["phq9"] == 15
    # A total alone: the registry asks about item 9, it never shows "no risk".
    assert ("suicide item unknown" in row["flags"]) is unknown
