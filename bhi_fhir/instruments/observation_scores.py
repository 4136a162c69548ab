"""Screening events (Observations and DiagnosticReports, grouped by
:mod:`bhi_fhir.instruments.observation_events`) → one ``Score`` per event. Pure.

Item points come from ``weights.answer_points`` via the ordinary response scorer: the items are
put into a QuestionnaireResponse-shaped dict and scored by ``score_response``, so the rules are
the same however the screen was stored.

What is unknown stays unknown:

- a total without items gives total, band and positive (``complete`` is true: the band is
  known) but adds ``items-unknown``; for an instrument with a suicide item (PHQ-9 and PHQ-A
  item 9, EPDS item 10) it also adds ``suicide-item-unknown``. Such a score must never be read
  as "no suicide risk": the workflow asks for a check. When the suicide item's Observation is
  present it decides (above 0 → ``suicide-risk``);
- Observations and reports with status ``entered-in-error`` or ``cancelled`` are not scored;
  an event with any other status but ``final``/``amended``/``corrected`` (``registered``,
  ``preliminary``, ``unknown``) is not final, exactly as a response that is not final: no
  total, band or positive, flag ``not-final``, ``suicide-risk`` kept. ``Score.status`` is
  ``completed`` (final), ``amended`` (amended or corrected) or the Observation's own status;
- a total Observation without a value that is a whole number within the instrument's range
  adds ``invalid-total`` and gets no total and no band (``complete`` false).

``Score.response_ref`` names the resource that stands for the event: the DiagnosticReport,
else the panel Observation, else the total, else the first item (``"Observation/<id>"``).

Observations that bhi-fhir itself wrote for a response (``observations.py``) carry
``derivedFrom`` that QuestionnaireResponse; ``merge_screening_scores`` drops them when the
response's own score is given, and otherwise matches an Observation screen to a response of
the same patient, instrument, calendar day (the first 10 characters of the two timestamps, as
written) and total — each response absorbing at most one such unlinked screen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bhi_fhir.cut_points import CutPoint
from bhi_fhir.instruments import epds, phq9, phqa
from bhi_fhir.instruments.observation_events import (
    ScreeningEvent,
    as_list,
    bundle_references,
    code_of,
    derived_links,
    effective_of,
    own_ref,
    screening_events,
    subject_of,
)
from bhi_fhir.instruments.result import NOT_FINAL, TOTAL_MISMATCH, InstrumentId, Score
from bhi_fhir.instruments.scoring import INVALID_ANSWER, score_response
from bhi_fhir.instruments.spec import InstrumentSpec
from bhi_fhir.instruments.weights import AnswerError, answer_points, parse_total

# bundle_references is the companion of scores_from_observations' ``references``: exported
# with it for its callers.
__all__ = [
    "INVALID_TOTAL",
    "ITEMS_UNKNOWN",
    "NOT_SCORED_STATUSES",
    "SUICIDE_ITEM_UNKNOWN",
    "bundle_references",
    "merge_screening_scores",
    "same_screen",
    "score_event",
    "scores_from_observations",
]

Json = Mapping[str, Any]

ITEMS_UNKNOWN: Final = "items-unknown"
SUICIDE_ITEM_UNKNOWN: Final = "suicide-item-unknown"
INVALID_TOTAL: Final = "invalid-total"

NOT_SCORED_STATUSES: Final = frozenset({"entered-in-error", "cancelled"})
# Observation.status (FHIR R4) → Score.status, which speaks QuestionnaireResponse.status:
# only "completed" and "amended" are final there (result.py).
_SCORE_STATUS: Final[Mapping[str, str]] = {
    "final": "completed",
    "amended": "amended",
    "corrected": "amended",
}

# The item that decides "suicide risk" for instruments that have one: while it is unknown,
# so is the risk.
_SUICIDE_ITEM: Final[Mapping[InstrumentId, str]] = {
    "phq9": phq9.ITEM_9,
    "phqa": phqa.ITEM_9,
    "epds": epds.ITEM_10,
}


def scores_from_observations(
    resources: Iterable[Json],
    *,
    references: Mapping[str, str] | None = None,
    patient_sex: str | None = None,
    cut_points: Mapping[InstrumentId, CutPoint] | None = None,
) -> list[Score]:
    """One Score per screening event found among ``resources`` (Observations and
    DiagnosticReports; anything else is ignored), oldest first.

    ``references`` maps Bundle ``fullUrl``s (``urn:uuid:…``) to ``"Type/id"``
    (``bundle_references``); ``patient_sex`` and ``cut_points`` are as for ``score_response``.
    """
    urls = references or {}
    scores = [
        score
        for event in screening_events(resources, urls)
        if (score := score_event(event, urls, patient_sex, cut_points)) is not None
    ]
    scores.sort(key=lambda s: (s.authored or "", s.response_ref or ""))
    return scores


def merge_screening_scores(
    response_scores: Sequence[Score],
    resources: Iterable[Json],
    *,
    references: Mapping[str, str] | None = None,
    patient_sex: str | None = None,
    cut_points: Mapping[InstrumentId, CutPoint] | None = None,
) -> list[Score]:
    """The scored QuestionnaireResponses plus the Observation screens that are not the same
    screen again, oldest first: one Score per screening event.

    An Observation screen is the same screen as a response when it (its report, panel or any
    member) is ``derivedFrom`` that response (how bhi-fhir writes its own,
    ``observations.py``), or — with no such link — when patient, instrument, calendar day and
    total are equal (module docstring).
    """
    urls = references or {}
    known = {s.response_ref for s in response_scores if s.response_ref}
    unmatched = [s for s in response_scores if s.total is not None]
    merged = list(response_scores)
    observed: list[Score] = []
    for event in screening_events(resources, urls):
        score = score_event(event, urls, patient_sex, cut_points)
        if score is None or derived_links(event, urls) & known:
            continue
        observed.append(score)
    observed.sort(key=lambda s: (s.authored or "", s.response_ref or ""))
    for score in observed:
        twin = next((r for r in unmatched if same_screen(r, score)), None)
        if twin is not None:
            unmatched.remove(twin)
            continue
        merged.append(score)
    merged.sort(key=lambda s: (s.authored or "", s.response_ref or ""))
    return merged


def score_event(
    event: ScreeningEvent,
    urls: Mapping[str, str],
    sex: str | None,
    cut_points: Mapping[InstrumentId, CutPoint] | None,
) -> Score | None:
    spec = event.spec
    parts = [event.container] if event.container is not None else []
    if any(p.get("status") in NOT_SCORED_STATUSES for p in parts):
        return None
    members = [m for m in event.members if m.get("status") not in NOT_SCORED_STATUSES]
    total_obs = next(
        (m for m in members if spec.total_code and code_of(m) == spec.total_code), None
    )
    items = [m for m in members if spec.item(code_of(m) or "")]
    components = [c for o in (*parts, *members) for c in as_list(o.get("component"))]
    answered = [*items, *(c for c in components if spec.item(code_of(c) or ""))]
    if total_obs is None and not answered:
        return None

    lead = event.container or total_obs or (items or members)[0]
    subject = next(
        (s for o in (lead, *members) if (s := subject_of(o, urls)) is not None), None
    )
    when = next((d for o in (total_obs, lead, *members) if o and (d := effective_of(o))), None)
    # The event is as final as its least final part.
    statuses = [str(o["status"]) for o in (*parts, *members) if isinstance(o.get("status"), str)]
    not_final = next((s for s in statuses if s not in _SCORE_STATUS), None)
    status = not_final or ("amended" if "amended" in map(_SCORE_STATUS.get, statuses)
                           else "completed")

    reported = parse_total({"answer": [total_obs]}) if total_obs is not None else None
    itemised = _score_items(spec, answered, reported, sex, cut_points) if answered else None
    if itemised is not None and itemised.complete:
        result = itemised
    elif total_obs is not None:
        result = _score_total(spec, reported, itemised, sex, cut_points)
    elif itemised is not None:
        result = itemised  # incomplete items, no total: the scorer's "incomplete" stands
    else:
        return None
    if not_final is not None:
        # Not a screen yet (as for a response that is not final): only what flags a crisis
        # survives — suicide-risk, and a C-SSRS "high" level that no further answer can lower.
        keep = result.severity if spec.id == "cssrs" and result.severity == "high" else None
        result = replace(result, total=None, severity=keep, positive=None, complete=False,
                         bounds=None, flags=(*result.flags, NOT_FINAL))
    return replace(
        result,
        flags=tuple(dict.fromkeys(result.flags)),
        response_ref=own_ref(lead),
        subject_ref=subject,
        authored=when,
        reported_total=reported,
        status=status,
    )


def _score_items(
    spec: InstrumentSpec,
    answered: Sequence[Json],
    reported: float | None,
    sex: str | None,
    cut_points: Mapping[InstrumentId, CutPoint] | None,
) -> Score | None:
    """The items, scored by ``score_response`` as a QuestionnaireResponse keyed by LOINC code
    (``questionnaire`` names the panel, so the registry picks ``spec``)."""
    qr_items: list[dict[str, Any]] = []
    for obs in answered:
        key = code_of(obs) or ""
        answer = _answer(obs)
        if answer is None:
            continue
        item = spec.item(key)
        if item is not None and not item.scored:
            try:
                answer_points(answer, None)
            except AnswerError:
                continue  # e.g. PHQ-9 difficulty (LA6572-7 …): own answer list, not scored
        qr_items.append({"linkId": key, "answer": [answer]})
    if not qr_items:
        return None
    if reported is not None and spec.total_code:
        qr_items.append({"linkId": spec.total_code, "answer": [{"valueDecimal": reported}]})
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": f"http://loinc.org/q/{spec.panel_code or spec.id}",
        "item": qr_items,
    }
    return score_response(qr, patient_sex=sex, cut_points=cut_points)


def _score_total(
    spec: InstrumentSpec,
    reported: float | None,
    partial: Score | None,
    sex: str | None,
    cut_points: Mapping[InstrumentId, CutPoint] | None,
) -> Score:
    """Band and positive from a total the record carries; what the items say, if any, kept."""
    items = dict(partial.items) if partial is not None else {}
    flags: list[str] = [ITEMS_UNKNOWN]
    if partial is not None:  # the judge below re-reads the items (suicide-risk …)
        flags.extend(f for f in partial.flags if f == INVALID_ANSWER)
    suicide_item = _SUICIDE_ITEM.get(spec.id)
    if suicide_item is not None and suicide_item not in items:
        flags.append(SUICIDE_ITEM_UNKNOWN)
    whole = reported is not None and math.isfinite(reported) and reported == int(reported)
    total = int(reported) if whole and reported is not None else None
    if total is None or not 0 <= total <= spec.max_total:
        flags.append(INVALID_TOTAL)  # no value, not a whole number, or out of range
        return Score(instrument=spec.id, total=None, severity=None, positive=None,
                     complete=False, flags=tuple(dict.fromkeys(flags)), items=items)
    low = sum(items.get(i.key, 0) for i in spec.scored_items)
    high = low + sum(i.max_points for i in spec.scored_items if i.key not in items)
    if not low <= total <= high:
        flags.append(TOTAL_MISMATCH)  # the answered items alone rule this total out
    severity = spec.band(total)
    cut = spec.cut(sex, (cut_points or {}).get(spec.id))
    positive = total >= cut if cut is not None else None
    if spec.judge is not None:
        verdict = spec.judge(spec, items, True, total, sex, positive)
        severity = verdict.severity if verdict.severity is not None else severity
        positive = verdict.positive if verdict.positive is not None else positive
        flags.extend(verdict.flags)
    return Score(
        instrument=spec.id, total=total, severity=severity, positive=positive, complete=True,
        flags=tuple(dict.fromkeys(flags)), items=items,
        codings=dict(partial.codings) if partial is not None else {},
    )


def _answer(obs: Json) -> dict[str, Any] | None:
    """An Observation's (or component's) value as a QuestionnaireResponse answer."""
    concept = obs.get("valueCodeableConcept")
    if isinstance(concept, Mapping):
        answers = [
            {"valueCoding": dict(c)}
            for c in as_list(concept.get("coding"))
            if isinstance(c, Mapping)
        ]
        for answer in answers:  # the first Coding whose points are known (LA code, weight …)
            try:
                answer_points(answer, None)
            except AnswerError:
                continue
            return answer
        return answers[0] if answers else None
    for key in ("valueInteger", "valueBoolean"):
        if key in obs:
            return {key: obs[key]}
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping) and "value" in quantity:
        return {"valueDecimal": quantity["value"]}
    return None


def same_screen(response: Score, observed: Score) -> bool:
    return (
        response.instrument == observed.instrument
        and response.total is not None
        and response.total == observed.total
        and (response.subject_ref is None or observed.subject_ref is None
             or response.subject_ref == observed.subject_ref)
        and (response.authored or "")[:10] == (observed.authored or "")[:10] != ""
    )
