"""The shape-cached validator gives the same verdict as full R4B validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bhi_fhir.workflow import validate as v

from .helpers import TODAY
from .test_differential import stream_patients


def _writes() -> list[dict[str, Any]]:
    from bhi_fhir.instruments import score_response, sex_of
    from bhi_fhir.timeline import build_timeline
    from bhi_fhir.workflow import apply, timeline_settings

    from .helpers import plan, protocol

    out = []
    for ident, resources in stream_patients(46):
        sex = sex_of(next(r for r in resources if r["resourceType"] == "Patient"))
        scores = [
            score_response(r, patient_sex=sex)
            for r in resources
            if r["resourceType"] == "QuestionnaireResponse"
        ]
        timeline = build_timeline(ident, resources, scores, TODAY, timeline_settings(plan()))
        out += [w.resource for w in apply(protocol(), timeline, plan(), validate=False).writes]
    return out


def _full_ok(resource: dict[str, Any]) -> bool:
    try:
        v._full(resource)
    except v.ResourceInvalid:
        return False
    return True


def _cached_ok(resource: dict[str, Any]) -> bool:
    try:
        v.validate_resource(resource)
    except v.ResourceInvalid:
        return False
    return True


# (what, mutation, refused by the R4B models) rows: one string leaf or the structure changed.
MUTATIONS = [
    ("bad dateTime", lambda r: r.__setitem__("authoredOn", "2026-13-40"), True),
    ("date with a time zone only", lambda r: r.__setitem__("authoredOn", "2026-11-26+01:00"), True),
    ("code with two spaces", lambda r: r.__setitem__("status", "in  progress"), True),
    ("empty string", lambda r: r["identifier"][0].__setitem__("value", ""), True),
    ("empty code", lambda r: r.__setitem__("intent", ""), True),
    ("bad uri system", lambda r: r["identifier"][0].__setitem__("system", "a b"), False),
    ("unknown key", lambda r: r.__setitem__("colour", "red"), True),
    ("null element", lambda r: r.__setitem__("code", None), False),
    ("string where an object belongs", lambda r: r.__setitem__("code", "engage"), True),
    ("empty object", lambda r: r.__setitem__("code", {}), False),
    ("number where a code belongs", lambda r: r.__setitem__("status", 3), True),
]


def test_every_generated_resource_agrees_with_full_validation() -> None:
    v.clear_caches()
    writes = _writes()
    assert writes
    for resource in writes * 2:  # the second pass hits remembered shapes
        assert _cached_ok(resource) == _full_ok(resource) is True


@pytest.mark.parametrize(("what", "mutate", "refused"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_changed_resource_of_a_known_shape_gets_the_full_verdict(
    what: str, mutate: Any, refused: bool
) -> None:
    writes = [w for w in _writes() if w["resourceType"] == "Task"]
    for resource in writes:
        v.validate_resource(resource)  # every shape remembered
        broken = copy.deepcopy(resource)
        mutate(broken)
        assert _full_ok(broken) is not refused, what
        assert _cached_ok(broken) is not refused, what
        if refused:
            with pytest.raises(v.ResourceInvalid, match="does not validate"):
                v.validate_resource(broken)
