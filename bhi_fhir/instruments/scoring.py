"""Score one QuestionnaireResponse. Pure: the response (and optionally its Questionnaire and
the patient's sex) in, a ``Score`` out.

A partial response is never summed: if a required item is missing or its answer has no
knowable points, the result has no total, no band and ``complete`` is false — while a crisis
item that *is* answered still raises ``suicide-risk`` (item 9 above 0 needs same-day
follow-up whatever the total, https://www.calcipedia.org/calculators/phq-9-calculator). A sum
scale's partial answers can still decide the screen: positive when they already reach the cut point,
negative when they cannot reach it with every missing item at its maximum.

Only a final response (status ``completed`` or ``amended``) is a screen; see ``Score``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any, TypeGuard

from bhi_fhir.cut_points import CutPoint
from bhi_fhir.instruments.registry import (
    BY_ID,
    by_canonical,
    by_items,
    by_questionnaire,
    cached_candidates,
)
from bhi_fhir.instruments.registry import candidates as item_candidates
from bhi_fhir.instruments.result import (
    ENTERED_IN_ERROR,
    FINAL_STATUSES,
    INCOMPLETE,
    NEGATIVE_BY_BOUND,
    NOT_FINAL,
    POSITIVE_BY_BOUND,
    TOTAL_MISMATCH,
    UNRECOGNISED,
    InstrumentId,
    Score,
)
from bhi_fhir.instruments.spec import InstrumentSpec
from bhi_fhir.instruments.weights import (
    AnswerError,
    answer_points,
    parse_total,
    questionnaire_weights,
)

INVALID_ANSWER = "invalid-answer"

Json = Mapping[str, Any]


def score_response(
    qr: Json,
    *,
    questionnaire: Json | None = None,
    patient_sex: str | None = None,
    cut_points: Mapping[InstrumentId, CutPoint] | None = None,
) -> Score:
    """Score ``qr``. ``patient_sex`` is "male", "female" or None (see ``sex_of``);
    ``cut_points`` overrides an instrument's default cut point (the practice plan's)."""
    q_items = dict(_questionnaire_items(questionnaire)) if questionnaire else {}
    answered = list(_response_items(qr))
    spec = (
        by_canonical(_str(qr.get("questionnaire")))
        or by_questionnaire(questionnaire)
        or by_items(item_candidates(lid, _code(q_items.get(lid))) for lid, _ in answered)
    )
    base = Score(
        None, None, None, None, False,
        response_ref=f"QuestionnaireResponse/{qr['id']}" if _str(qr.get("id")) else None,
        subject_ref=_str((qr.get("subject") or {}).get("reference")),
        authored=_str(qr.get("authored")),
        status=_str(qr.get("status")),
    )
    if spec is None:
        return replace(base, flags=(UNRECOGNISED,))

    points: dict[str, int] = {}
    codings: dict[str, dict[str, str]] = {}
    flags: list[str] = []
    reported: float | None = None
    for link_id, item in answered:
        q_item = q_items.get(link_id)
        key = _key_in(spec, link_id, _code(q_item))
        if key is None:
            continue
        if key == "#total":
            reported = parse_total(item) if reported is None else reported
            continue
        if key in points:
            continue  # the first answer to an item stands; a repeat does not add to it
        limit = spec.item(key)
        if limit is not None and limit.derived:
            continue  # the scorer derives it from the items (the C-SSRS risk level)
        answer = next(iter(item.get("answer") or ()), None)
        if not _is_map(answer):
            continue
        try:
            value = answer_points(answer, questionnaire_weights(q_item) if q_item else None)
        except AnswerError:
            flags.append(INVALID_ANSWER)
            continue
        if limit is None or not 0 <= value <= limit.max_points:
            flags.append(INVALID_ANSWER)
            continue
        points[key] = value
        coding = answer.get("valueCoding")
        if _is_map(coding):
            codings[key] = {k: v for k in ("system", "code", "display")
                            if isinstance(v := coding.get(k), str)}

    if base.status == ENTERED_IN_ERROR:
        return replace(base, instrument=spec.id, flags=(ENTERED_IN_ERROR,), items=points)
    return _judge(spec, points, flags, reported, patient_sex, cut_points, base, codings)


def _judge(
    spec: InstrumentSpec,
    points: dict[str, int],
    flags: list[str],
    reported: float | None,
    sex: str | None,
    cut_points: Mapping[InstrumentId, CutPoint] | None,
    base: Score,
    codings: dict[str, dict[str, str]],
) -> Score:
    status = base.status
    skipped = spec.skipped(points) if spec.skipped else frozenset()
    complete = all(
        item.key in points or item.key in skipped for item in spec.items if item.required
    )
    bounds: tuple[int, int] | None = None
    total: int | None = None
    if spec.sums:
        low = sum(points.get(i.key, 0) for i in spec.scored_items)
        high = low + sum(i.max_points for i in spec.scored_items
                         if i.key not in points and i.key not in skipped)
        bounds = (low, high)
        total = low if complete else None
    severity = spec.band(total) if total is not None else None
    final = status in FINAL_STATUSES
    cut = spec.cut(sex, (cut_points or {}).get(spec.id))
    positive: bool | None = None
    if final and bounds is not None and cut is not None:
        if bounds[0] >= cut:
            positive = True  # reached whatever the missing items hold
        elif bounds[1] < cut:
            positive = False  # cannot reach it even with every missing item at its maximum
        if positive is not None and total is None:
            flags.append(POSITIVE_BY_BOUND if positive else NEGATIVE_BY_BOUND)
    if spec.judge is not None:
        verdict = spec.judge(spec, points, complete, total, sex, positive)
        complete = complete if verdict.complete is None else verdict.complete
        severity = verdict.severity if verdict.severity is not None else severity
        positive = verdict.positive if verdict.positive is not None else positive
        flags.extend(verdict.flags)
    if not complete:
        flags.append(INCOMPLETE)
    if not final:
        # Answers may still change (in-progress) or were abandoned (stopped): not a screen.
        # Only what flags a crisis survives: suicide-risk and a C-SSRS "high" level, which no
        # further answer can lower.
        complete, total, bounds, positive = False, None, None, None
        severity = severity if spec.id == "cssrs" and severity == "high" else None
        flags.append(NOT_FINAL)
    if reported is not None and total is not None and reported != total:
        flags.append(TOTAL_MISMATCH)
    unique = tuple(dict.fromkeys(flags))
    return Score(  # every field of ``base`` but the references set here (cheaper than replace)
        instrument=spec.id, total=total, severity=severity, positive=positive,
        complete=complete, flags=unique, items=points, response_ref=base.response_ref,
        subject_ref=base.subject_ref, authored=base.authored, reported_total=reported,
        codings=codings, bounds=bounds, status=status,
    )


def sex_of(patient: Json | None) -> str | None:
    """"male"/"female" from US Core birth sex when present, else administrative gender."""
    if not patient:
        return None
    for ext in patient.get("extension") or ():
        if isinstance(ext, Mapping) and ext.get("url", "").endswith("us-core-birthsex"):
            return {"M": "male", "F": "female"}.get(_str(ext.get("valueCode")) or "")
    gender = patient.get("gender")
    return gender if gender in ("male", "female") else None


def _key_in(spec: InstrumentSpec, link_id: str, code: str | None) -> str | None:
    """The item key this linkId/code has within ``spec``; "#total" for a carried total."""
    return _key_for(spec.id, link_id, code)


@lru_cache(maxsize=16384)
def _key_for(instrument: InstrumentId, link_id: str, code: str | None) -> str | None:
    """Memoised by instrument id: a pure function of three strings."""
    return _find_key(BY_ID[instrument], link_id, code)


def _find_key(spec: InstrumentSpec, link_id: str, code: str | None) -> str | None:
    for instrument, key in cached_candidates(link_id, code):
        if key == "#total" and instrument == spec.id:
            return key
        if key != "#total" and spec.item(key):
            return key
    return None


def _response_items(node: Json) -> Iterator[tuple[str, Json]]:
    """Every answered-or-not item with a linkId, depth first, through groups and answers."""
    for item in node.get("item") or ():
        if not _is_map(item):
            continue
        link_id = item.get("linkId")
        answers = item.get("answer")
        if isinstance(link_id, str) and answers:
            yield link_id, item
        if item.get("item"):
            yield from _response_items(item)
        for answer in answers or ():
            if _is_map(answer) and answer.get("item"):
                yield from _response_items(answer)


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, without the ABC check for the usual plain dict."""
    return type(value) is dict or isinstance(value, Mapping)


def _questionnaire_items(node: Json) -> Iterator[tuple[str, Json]]:
    for item in node.get("item") or ():
        if isinstance(item, Mapping):
            if isinstance(item.get("linkId"), str):
                yield item["linkId"], item
            yield from _questionnaire_items(item)


def _code(q_item: Json | None) -> str | None:
    if not q_item:
        return None
    for coding in q_item.get("code") or ():
        if isinstance(coding, Mapping) and coding.get("system") in (None, "http://loinc.org"):
            code = coding.get("code")
            if isinstance(code, str):
                return code
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


__all__ = ["BY_ID", "ENTERED_IN_ERROR", "INVALID_ANSWER", "score_response", "sex_of"]
