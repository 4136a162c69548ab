"""Screening Observations: US Core shape, deterministic identifiers, R4 validity."""

from __future__ import annotations

import json

from fhir.resources.R4B.observation import Observation
from fhirclient.models.observation import Observation as StrictR4Observation

from bhi_fhir.instruments import full_url, score_response, screening_observations
from tests.instruments.build import PHQ9, frequency, response, yes_no


def _phq9(points: list[int]) -> tuple[dict[str, object], list[dict[str, object]]]:
    qr = response(frequency(PHQ9, points), canonical="http://loinc.org/q/44249-1")
    return qr, screening_observations(score_response(qr), qr)


def test_panel_members_and_total() -> None:
    _, obs = _phq9([2, 2, 1, 1, 1, 2, 1, 1, 1])
    panel, total = obs[-1], obs[-2]
    assert panel["code"]["coding"][0]["code"] == "44249-1"  # LOINC panel
    assert total["code"]["coding"][0]["code"] == "44261-6"  # LOINC total
    assert total["valueQuantity"]["value"] == 12
    assert [i["coding"][0]["code"] for i in total["interpretation"]] == ["POS", "moderate"]
    assert len(obs) == 11  # 9 items + total + panel
    # US Core screening: item Observations carry the LA answer code.
    assert obs[0]["valueCodeableConcept"]["coding"][0]["code"] == "LA6570-1"
    members = {m["reference"] for m in panel["hasMember"]}
    assert members == {full_url(o["identifier"][0]["value"]) for o in obs[:-1]}
    for o in obs:  # US Core screening: survey category, derivedFrom the response
        assert o["category"][0]["coding"][0]["code"] == "survey"
        assert o["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr-1"}]


def test_identifiers_are_deterministic() -> None:
    _, first = _phq9([1] * 9)
    _, second = _phq9([1] * 9)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    values = [o["identifier"][0]["value"] for o in first]
    assert len(set(values)) == len(values)


def test_incomplete_has_no_total_and_is_preliminary() -> None:
    qr = response([i for i in frequency(PHQ9, [1] * 9) if i["linkId"] != "/44251-7"])
    obs = screening_observations(score_response(qr), qr)
    assert all(o["code"]["coding"][0]["code"] != "44261-6" for o in obs)
    assert {o["status"] for o in obs} == {"preliminary"}
    assert "incomplete" in obs[-1]["note"][0]["text"]


def test_cssrs_risk_level_observation() -> None:
    from bhi_fhir.instruments.cssrs import Q1, Q2, Q3, Q4, Q5, Q6

    qr = response(yes_no({Q1: True, Q2: True, Q3: True, Q4: True, Q5: False, Q6: False}),
                  canonical="http://loinc.org/q/93373-9")
    obs = screening_observations(score_response(qr), qr)
    risk = [o for o in obs if o["code"]["coding"][0]["code"] == "93374-7"]
    assert risk[0]["valueCodeableConcept"]["coding"][0]["code"] == "high"


def test_valid_r4b_and_strict_r4() -> None:
    _, obs = _phq9([3] * 9)
    for o in obs:
        Observation.model_validate(o)
        StrictR4Observation(o, strict=True)
