"""The compiled/memoised FHIRPath layer gives exactly what fhirpathpy gives."""

from __future__ import annotations

from typing import Any

import fhirpathpy
import pytest

from bhi_fhir.workflow.fhirpath import Expression, ExpressionError, _plain, truthy
from bhi_fhir.workflow.protocol import Action

from .helpers import careplan, consent, contact, patient, plan, protocol, score, timeline


def _expressions(action: Action) -> list[Expression]:
    found = [*action.conditions, *(e for _, e in action.variables)]
    found += [e for e in (action.for_each, action.key, action.sources, action.reason) if e]
    if action.template:
        found += [e for _, e in action.template.dynamic]
    for child in action.children:
        found += _expressions(child)
    return found


def _contexts() -> list[dict[str, Any]]:
    tls = [
        timeline([score("phq9", 15, 2, item9=1), score("cssrs", None, 1, risk="high")],
                 [patient(), consent()]),
        timeline([score("phq9", 16, 65), score("phq9", 12, 3), score("gad7", 11, 60)],
                 [patient("male"), careplan(63), contact(30)]),
        timeline([score("phq2", 4, 1), score("auditc", 4, 1)], [patient("male")]),
    ]  # fmt: skip
    view = plan().fhirpath_view()
    contexts = []
    for tl in tls:
        base = {"facts": tl.facts, "plan": view,
                "careManager": {"reference": "Practitioner/x", "display": "X"}}  # fmt: skip
        contexts.append(base)
        for crisis in tl.facts["crises"]:
            route = [r for r in view["crisis"]["routes"] if r["risk"] == crisis.get("risk")]
            screen = [tl.facts["latest"]["phq9"]] if "phq9" in tl.facts["latest"] else []
            contexts.append({**base, "item": crisis, "route": route, "screen": screen,
                             "due": "2026-12-01", "cut": 4})  # fmt: skip
    return contexts


def test_every_protocol_expression_matches_fhirpathpy() -> None:
    expressions = [e for a in protocol().actions for e in _expressions(a)]
    assert len(expressions) > 100
    checked = 0
    for context in _contexts():
        for expr in expressions:
            try:
                expected = _plain(fhirpathpy.evaluate({}, expr.text, dict(context)))
            except Exception:
                continue  # needs a variable this context does not bind
            assert expr.evaluate(context) == expected, expr.text
            assert expr.evaluate(context) == expected, f"memo hit: {expr.text}"
            checked += 1
    assert checked > 300


@pytest.mark.parametrize(
    ("text", "value"),
    [("'a\\'b'", ["a'b"]), ("42", [42]), ("true", [True]), ("%x.y", [1, 2])],
)
def test_fast_paths(text: str, value: list[Any]) -> None:
    assert Expression(text).evaluate({"x": [{"y": 1}, {"y": [2]}]}) == value


def test_memo_key_covers_what_the_expression_reads() -> None:
    expr = Expression("%facts.a.total >= %plan.cut")
    assert expr.memoised
    assert truthy(expr.evaluate({"facts": {"a": {"total": 10}}, "plan": {"cut": 10}}))
    assert not truthy(expr.evaluate({"facts": {"a": {"total": 9}}, "plan": {"cut": 10}}))
    assert not truthy(expr.evaluate({"facts": {"a": {"total": 10}}, "plan": {"cut": 11}}))


def test_clock_functions_are_never_memoised() -> None:
    assert not Expression("today() > %facts.d").memoised


def test_parse_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match="cannot parse FHIRPath"):
        Expression("%facts.(")


def test_walk_fast_path_matches_the_general_walk() -> None:
    from bhi_fhir.workflow.fhirpath import _walk, _walk_all

    facts = {
        "a": {"b": {"c": 1}, "l": [{"c": 2}, {"c": [3, 4]}, 5], "n": None, "s": "x"},
        "e": [],
        "z": 0,
        "f": False,
    }
    paths = [(), ("a",), ("a", "b"), ("a", "b", "c"), ("a", "l", "c"), ("a", "l"), ("a", "n"),
             ("a", "n", "c"), ("a", "s"), ("a", "s", "c"), ("e",), ("e", "x"), ("z",), ("f",),
             ("missing",), ("a", "missing", "c")]  # fmt: skip
    for path in paths:
        assert _walk(facts, path) == _walk_all(facts, path), path
    for root in (None, [], [facts, facts], "x", 0):
        assert _walk(root, ("a", "b")) == _walk_all(root, ("a", "b"))


def test_where_union_and_first_fast_paths_match_fhirpathpy() -> None:
    import itertools

    import fhirpathpy

    from bhi_fhir.workflow.fhirpath import Expression, _plain

    texts = [
        "%facts.latest.phq9.where(total >= %plan.cut and daysAgo <= %plan.lookback)"
        " | %facts.latest.gad7.where(total >= %plan.cut)",
        "%facts.latest.phq9.where(total >= %plan.cut)",
        "%plan.routes.where(risk = %item.risk)",
        "%screen.first().source",
        "%screen.first().total",
        "%screen.first().label + ' ' + %screen.first().total.toString()",
        "%screen.first().source | %facts.latest.gad7.source | %facts.latest.phq9.source",
        "%facts.latest.phq9.total | %facts.latest.gad7.total",
        "%screen.source | %facts.latest.gad7.source",
    ]
    plans = [{"cut": 10, "lookback": 30, "routes": [{"risk": "high", "n": 1}, {"risk": "low"}]}]
    ids = itertools.count()
    facts_rows = []
    for phq9, gad7, days in itertools.product((None, 9, 10, 15), (None, 9, 12), (0, 30, 31)):
        latest: dict[str, Any] = {}
        if phq9 is not None:
            latest["phq9"] = {"total": phq9, "daysAgo": days, "label": "PHQ-9",
                              "source": f"QuestionnaireResponse/{next(ids)}"}  # fmt: skip
        if gad7 is not None:
            latest["gad7"] = {"total": gad7, "daysAgo": days, "label": "GAD-7",
                              "source": f"QuestionnaireResponse/{next(ids)}"}  # fmt: skip
        facts_rows.append({"latest": latest})
    assert all(Expression(t)._filters is not None for t in texts[:3] + texts[6:])  # fast paths
    assert all(Expression(t)._path is not None for t in texts[3:5])
    for text in texts:
        fast = Expression(text)
        slow = fhirpathpy.compile(text)
        for facts in facts_rows:
            screen = list(facts["latest"].values())
            for item in ({"risk": "high"}, {"risk": "moderate"}, {}):
                variables = {"facts": facts, "plan": plans[0], "item": item, "screen": screen}
                assert fast.evaluate(variables) == _plain(slow({}, dict(variables))), text
