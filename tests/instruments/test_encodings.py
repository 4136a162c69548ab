"""Recognition and answer-weight resolution across encodings (FHIR itemWeight, US Core)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bhi_fhir.instruments import score_response
from bhi_fhir.instruments.questionnaires import build
from bhi_fhir.instruments.registry import BY_ID
from tests.instruments.build import GAD7, PHQ9, coding, frequency, response

CSPHQ9 = "http://hl7.org/fhir/uv/sdc/CodeSystem/CSPHQ9"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def test_questionnaire_weight_comes_first() -> None:
    # FHIR itemWeight order 1: the Questionnaire's answerOption itemWeight beats the LA table.
    questionnaire = build(BY_ID["phq9"])
    for option in questionnaire["item"][0]["answerOption"]:
        if option["valueCoding"]["code"] == "LA6569-3":
            option["extension"] = [{"url": ITEM_WEIGHT, "valueDecimal": 2}]
    qr = response(frequency(PHQ9, [1] * 9, prefix=""))
    assert score_response(qr).total == 9
    assert score_response(qr, questionnaire=questionnaire).total == 10


def test_weight_on_the_answer_coding() -> None:
    # FHIR itemWeight order 2: ordinalValue on the answer Coding (fhirpath.js weight()).
    items = frequency(PHQ9, [0] * 9)
    items[0]["answer"] = [{"valueCoding": {"code": "x-local", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 3}]}}]
    assert score_response(response(items, canonical="http://loinc.org/q/44249-1")).total == 3


def test_sdc_csphq9_codes_nested_in_a_group() -> None:
    # FHIR itemWeight order 3 (SDC CSPHQ9) and "look in nested groups too" (QI-Core).
    codes = ["Not-at-all", "Several-days", "More than half the days", "Nearly every day"]
    inner = [{"linkId": f"/{k}", "answer": [coding(codes[2], CSPHQ9)]} for k in PHQ9]
    qr = response([{"linkId": "grp", "item": [{"linkId": "sub", "item": inner}]}])
    assert (score_response(qr).instrument, score_response(qr).total) == ("phq9", 18)


def test_value_integer_and_decimal_and_mixed() -> None:
    # FHIR itemWeight order 5, mixed with LA codes in one response.
    items = frequency(PHQ9, [1] * 9)
    items[0]["answer"] = [{"valueInteger": 3}]
    items[1]["answer"] = [{"valueDecimal": 2.0}]
    assert score_response(response(items)).total == 3 + 2 + 7


@pytest.mark.parametrize("bad", [{"valueInteger": 4}, {"valueDecimal": 1.5},
                                 {"valueCoding": {"code": "LA9999-9"}}, {"valueString": "3"}])
def test_unknowable_answer_makes_it_incomplete(bad: dict[str, Any]) -> None:
    items = frequency(PHQ9, [1] * 9)
    items[2]["answer"] = [bad]
    score = score_response(response(items))
    assert (score.total, score.complete) == (None, False)
    assert "invalid-answer" in score.flags


@pytest.mark.parametrize(
    ("link_ids", "expected"),
    [
        ([f"phq-phq9-q{n:02d}" for n in range(1, 10)], "phq9"),  # FHIR itemWeight linkIds seen
        ([f"/{k}" for k in PHQ9], "phq9"),
        ([f"gad7-{n}" for n in range(1, 8)], "gad7"),
        ([f"gad7-item-{n}" for n in range(1, 8)], "gad7"),
        ([f"/{k}" for k in GAD7], "gad7"),
    ],
)
def test_recognised_by_link_ids(link_ids: list[str], expected: str) -> None:
    items = [{"linkId": lid, "answer": [coding("LA6569-3")]} for lid in link_ids]
    assert score_response(response(items)).instrument == expected


def test_recognised_by_questionnaire_code() -> None:
    questionnaire = build(BY_ID["gad7"])
    items = [{"linkId": f"q{n}", "answer": [coding("LA6569-3")]} for n in range(7)]
    for item, q_item in zip(items, questionnaire["item"], strict=True):
        q_item["linkId"] = item["linkId"]
    questionnaire.pop("url")
    qr = response(items, canonical="urn:local:form")
    assert score_response(qr, questionnaire=questionnaire).instrument == "gad7"
    assert score_response(qr, questionnaire=questionnaire).total == 7


def test_unrecognised() -> None:
    score = score_response(response([{"linkId": "x", "answer": [{"valueInteger": 1}]}]))
    assert (score.instrument, score.total, score.flags) == (None, None, ("unrecognised",))


@pytest.mark.parametrize(
    ("carried", "mismatch"),
    [({"valueDecimal": 12}, False), ({"valueDecimal": 13}, True),
     # US Core examples totals, US Core examples
     ({"valueString": "12"}, False), ({"valueInteger": 11}, True)],
)
def test_total_mismatch(carried: dict[str, Any], mismatch: bool) -> None:
    total = {"linkId": "/44261-6", "answer": [carried]}
    items = [*frequency(PHQ9, [2, 2, 1, 1, 1, 2, 1, 1, 1]), total]
    score = score_response(response(items))
    assert score.total == 12
    assert ("total-mismatch" in score.flags) is mismatch


def test_entered_in_error_is_not_scored() -> None:
    qr = response(frequency(PHQ9, [3] * 9))
    qr["status"] = "entered-in-error"
    score = score_response(qr)
    assert (score.total, score.complete, score.flags) == (None, False, ("entered-in-error",))


def test_scoring_does_not_modify_its_input() -> None:
    qr = response(frequency(PHQ9, [1] * 9))
    before = copy.deepcopy(qr)
    score_response(qr, questionnaire=build(BY_ID["phq9"]))
    assert qr == before
