"""Every valid answer of every item is accepted, and skip logic is not missing data.

Rows cite their source; the committed Questionnaires (profiles/questionnaires/*.json) are
checked option by option, so an answer our own forms offer is never an ``invalid-answer``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bhi_fhir.instruments import score_response
from bhi_fhir.instruments.cssrs import Q1, Q2, Q3, Q4, Q5, Q6, Q6B, RISK_LEVEL
from bhi_fhir.paths import profiles_dir
from tests.instruments.build import PHQ9, PHQA, audit, coding, frequency, response, yes_no

PHQ9_Q = "http://loinc.org/q/44249-1"
PHQA_Q = "https://bhi-fhir.dev/fhir/Questionnaire/phqa"
CSSRS_Q = "http://loinc.org/q/93373-9"
INVALID = "invalid-answer"


def with_extra(base: list[dict[str, Any]], link_id: str, answer: dict[str, Any]
               ) -> list[dict[str, Any]]:
    return [*base, {"linkId": link_id, "answer": [answer]}]


PHQ9_ALL = frequency(PHQ9, [1] * 9)
PHQA_ALL = frequency(PHQA, [1] * 9, prefix="")
CSSRS_NONE = yes_no({Q1: False, Q2: False, Q6: False})

# (canonical, items, linkId of the non-scored item, its answer, rejected?)
NON_SCORED = [
    # PHQ-9 functional difficulty 69722-7, not part of the total (US Core PHQ-9 example;
    # US Core Questionnaire-phq-9-example)
    *(pytest.param(PHQ9_Q, PHQ9_ALL, "/69722-7", coding(code), False, id=f"phq9-69722-7-{code}")
      for code in ("LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3")),
    pytest.param(PHQ9_Q, PHQ9_ALL, "/69722-7", coding("LA9999-9"), True,
                 id="phq9-69722-7-unknown-code"),
    # PHQ-A extra items (NIMH ASQ toolkit PHQ-A): difficulty and Y/N
    *(pytest.param(PHQA_Q, PHQA_ALL, "phqa-difficulty", coding(code), False,
                   id=f"phqa-difficulty-{code}")
      for code in ("LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3")),
    *(pytest.param(PHQA_Q, PHQA_ALL, key, coding(code), False, id=f"{key}-{code}")
      for key in ("phqa-past-year", "phqa-serious-thoughts", "phqa-attempt")
      for code in ("LA33-6", "LA32-8")),
    *(pytest.param(PHQA_Q, PHQA_ALL, key, {"valueBoolean": value}, False,
                   id=f"{key}-boolean-{value}")
      for key in ("phqa-past-year", "phqa-serious-thoughts", "phqa-attempt")
      for value in (True, False)),
    pytest.param(PHQA_Q, PHQA_ALL, "phqa-past-year", {"valueInteger": 2}, True,
                 id="phqa-past-year-2-out-of-range"),
    # AUDIT-C: 68517-2 days with X+ drinks in the past year, a count 0-366, never in the total
    # (US Core Questionnaire-AUDIT-C)
    *(pytest.param(None, audit(1, 0, 0), "/68517-2", {"valueInteger": n}, False,
                   id=f"auditc-68517-2-{n}-days") for n in (0, 1, 365, 366)),
    pytest.param(None, audit(1, 0, 0), "/68517-2", {"valueInteger": 367}, True,
                 id="auditc-68517-2-367-days"),
    # C-SSRS risk level 93374-7 the form may carry: derived by the scorer, not checked
    # (US BH Profiles IG QuestionnaireResponse-C-SSRS-example-1 answers LA9194-7 Low, Columbia
    # triage)
    pytest.param(CSSRS_Q, CSSRS_NONE, RISK_LEVEL, coding("LA9194-7"), False,
                 id="cssrs-93374-7-LA9194-7"),
]


@pytest.mark.parametrize(("canonical", "items", "link_id", "answer", "rejected"), NON_SCORED)
def test_non_scored_items_accept_their_answers(
    canonical: str | None, items: list[dict[str, Any]], link_id: str, answer: dict[str, Any],
    rejected: bool,
) -> None:
    plain = score_response(response(items, canonical=canonical))
    score = score_response(response(with_extra(items, link_id, answer), canonical=canonical))
    assert (INVALID in score.flags) is rejected
    # never part of the total
    assert (score.total, score.complete, score.positive) == (
        plain.total, plain.complete, plain.positive)


def _committed_options() -> list[Any]:
    rows = []
    for path in sorted((profiles_dir() / "questionnaires").glob("*.json")):
        questionnaire = json.loads(path.read_text())
        for item in questionnaire["item"]:
            for option in item.get("answerOption") or ():
                code = option["valueCoding"]["code"]
                rows.append(pytest.param(questionnaire, item["linkId"], code,
                                         id=f"{path.stem}-{item['linkId']}-{code}"))
    return rows


@pytest.mark.parametrize(("questionnaire", "link_id", "code"), _committed_options())
def test_every_option_of_our_questionnaires_is_accepted(
    questionnaire: dict[str, Any], link_id: str, code: str
) -> None:
    # The answer lists of profiles/questionnaires (LOINC answer lists) score without
    # invalid-answer, with and without the Questionnaire's weights.
    qr = response([{"linkId": link_id, "answer": [coding(code)]}],
                  canonical=questionnaire["url"])
    for given in (questionnaire, None):
        score = score_response(qr, questionnaire=given)
        assert score.instrument == questionnaire["id"]
        assert INVALID not in score.flags


# --- Skip logic
@pytest.mark.parametrize(
    ("points", "complete", "total", "bounds"),
    [
        # "Never" on Q1 skips Q2-Q3: complete, total 0 (WHO AUDIT guidelines, Babor 2001)
        ((0, None, None), True, 0, (0, 0)),
        ((0, 0, 0), True, 0, (0, 0)),  # asked anyway and answered 0: the same screen
        # Q1 above "Never": Q2 and Q3 are asked, so missing (Babor 2001)
        ((1, None, None), False, None, (1, 9)),
        ((1, 0, None), False, None, (1, 5)),
        ((1, 0, 0), True, 1, (1, 1)),
        ((None, 0, 0), False, None, (0, 4)),  # Q1 missing: nothing is skipped
    ],
    ids=["q1-never-q2q3-absent", "q1-never-q2q3-zero", "q1-monthly-q2q3-absent",
         "q1-monthly-q3-absent", "q1-monthly-complete", "q1-absent"],
)
def test_auditc_skip_logic(points: tuple[int | None, int | None, int | None], complete: bool,
                           total: int | None, bounds: tuple[int, int]) -> None:
    score = score_response(response(audit(*points)), patient_sex="male")
    assert (score.complete, score.total, score.bounds) == (complete, total, bounds)
    assert ("incomplete" in score.flags) is not complete
    if complete:
        assert score.positive is False  # below 4 for men (US Core AUDIT-C)


@pytest.mark.parametrize(
    ("answers", "complete"),
    [
        # Q3-Q5 are asked only if Q2 = Yes; 6b only if Q6 = Yes (C-SSRS screener; the
        # 93373-9 Questionnaire's enableWhen; Columbia screener)
        ({Q1: True, Q2: False, Q6: False}, True),
        ({Q1: True, Q2: True, Q6: False}, False),
        ({Q1: True, Q2: True, Q3: False, Q4: False, Q6: False}, False),
        ({Q1: True, Q2: True, Q3: False, Q4: False, Q5: False, Q6: False}, True),
        ({Q1: False, Q2: False, Q6: True}, False),
        ({Q1: False, Q2: False, Q6: True, Q6B: False}, True),
        ({Q1: False, Q2: False}, False),  # Q6 is always asked
    ],
    ids=["q2-no-skips-q3-5", "q2-yes-q3-5-missing", "q2-yes-q5-missing", "q2-yes-all-asked",
         "q6-yes-6b-missing", "q6-yes-6b-answered", "q6-missing"],
)
def test_cssrs_skip_logic(answers: dict[str, bool], complete: bool) -> None:
    score = score_response(response(yes_no(answers), canonical=CSSRS_Q))
    assert score.complete is complete
    assert ("incomplete" in score.flags) is not complete
