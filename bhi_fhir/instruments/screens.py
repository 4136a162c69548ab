"""A patient's screens, however each is stored: one ``Score`` per screening event. Pure.

Every surface (``apply``, ``sync``, the app, ``score``) asks this module, so all of them see
the same screens: QuestionnaireResponses are scored by
``score_response``; screening Observations and DiagnosticReports (US Core panels, Synthea
reports, lone totals: ``observation_scores``) add the screens that are not the same screen
again — an Observation ``derivedFrom`` a response given here (bhi-fhir's own) or matching one
by patient, instrument, day and total is dropped.

A screen read from a total alone has band and ``positive`` but flag ``suicide-item-unknown``
(PHQ-9, PHQ-A, EPDS): nothing is known about the suicide item, which is not "no risk"; the
timeline turns the flag into the fact ``suicideItemUnknown`` and the rules ask the clinician.

A score's ``response_ref`` names where it came from: ``QuestionnaireResponse/…`` or, for a
screen stored as Observations, the ``DiagnosticReport/…`` or ``Observation/…`` that stands for
it (``screen_source``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

# The event grouping and matching of observation_scores, used one response at a time by
# ``ScreenMerger`` (the streamed ``score``); ``merge_screening_scores`` is the batch form.
from bhi_fhir.instruments.observation_events import derived_links, screening_events
from bhi_fhir.instruments.observation_scores import (
    merge_screening_scores,
    same_screen,
    score_event,
)
from bhi_fhir.instruments.observations import response_key
from bhi_fhir.instruments.registry import INSTRUMENTS
from bhi_fhir.instruments.result import InstrumentId, Score
from bhi_fhir.instruments.scoring import score_response
from bhi_fhir.instruments.weights import LOINC_SYSTEM

__all__ = [
    "OBSERVATION_KINDS",
    "SCREEN_CODES",
    "ScreenMerger",
    "is_screening_resource",
    "screen_source",
    "screening_scores",
]

Json = Mapping[str, Any]
# Cut-point overrides as ``score_response`` takes them (the practice plan's).
CutPoints = Mapping[InstrumentId, Any]

OBSERVATION_KINDS: Final = ("Observation", "DiagnosticReport")
_SURVEY: Final = "survey"
# Every LOINC code that marks a screen: panels, totals and items of the known instruments.
_SCREEN_CODES: Final = frozenset(
    code
    for spec in INSTRUMENTS
    for code in (spec.panel_code, spec.total_code, *(i.key for i in spec.items))
    if code
)
SCREEN_CODES: Final = _SCREEN_CODES  # what a server search for a patient's screens asks for


def screening_scores(
    resources: Iterable[Json],
    *,
    questionnaires: Mapping[str, Json] | None = None,
    patient_sex: str | None = None,
    cut_points: CutPoints | None = None,
    references: Mapping[str, str] | None = None,
    on_error: Callable[[Json, Exception], None] | None = None,
) -> list[Score]:
    """One Score per screening event among one patient's ``resources``, oldest first.

    Every QuestionnaireResponse is scored, whatever its status (the timeline decides what a
    draft or an entered-in-error response counts for); one without an id is named by a digest
    of its content (``response_key``). ``questionnaires`` maps canonical URLs (no version) to
    Questionnaires (answer weights). A response the scorer cannot read goes to ``on_error``
    (or raises when there is none). ``references`` resolves ``urn:uuid:`` references of a
    transaction Bundle (``bundle_references``).
    """
    questionnaires = questionnaires or {}
    scores: list[Score] = []
    observed: list[Json] = []
    for resource in resources:
        kind = resource.get("resourceType")
        if kind in OBSERVATION_KINDS:
            observed.append(resource)
            continue
        if kind != "QuestionnaireResponse":
            continue
        canonical = str(resource.get("questionnaire") or "").split("|", 1)[0]
        try:
            score = score_response(resource, questionnaire=questionnaires.get(canonical),
                                   patient_sex=patient_sex, cut_points=cut_points)
        except Exception as exc:  # one odd response must not hide the patient's other screens
            if on_error is None:
                raise
            on_error(resource, exc)
            continue
        if score.response_ref is None:
            score = replace(score, response_ref=response_key(resource))
        scores.append(score)
    if not observed:
        return scores
    return merge_screening_scores(scores, observed, references=references,
                                  patient_sex=patient_sex, cut_points=cut_points)


def screen_source(score: Score) -> str | None:
    """The Observation or DiagnosticReport a screen was read from; None for a response."""
    ref = score.response_ref or ""
    return ref if ref.split("/", 1)[0] in OBSERVATION_KINDS else None


def is_screening_resource(resource: Json) -> bool:
    """An Observation or DiagnosticReport that may hold (part of) a screen: category
    ``survey``, or a LOINC panel, total or item code of a known instrument. What ``score``
    keeps in memory while it streams the responses."""
    if resource.get("resourceType") not in OBSERVATION_KINDS:
        return False
    for concept in _list(resource.get("category")):
        for coding in _list(concept.get("coding") if isinstance(concept, Mapping) else None):
            if isinstance(coding, Mapping) and coding.get("code") == _SURVEY:
                return True
    code = resource.get("code")
    codings = _list(code.get("coding")) if isinstance(code, Mapping) else []
    return any(
        isinstance(c, Mapping) and c.get("system") in (None, LOINC_SYSTEM)
        and c.get("code") in _SCREEN_CODES
        for c in codings
    )


class ScreenMerger:
    """``merge_screening_scores`` one response at a time, for a stream of responses: the
    Observation screens wait (oldest first) and each response scored takes out the screens
    ``derivedFrom`` it and at most one unlinked screen that matches it; ``remaining`` are the
    screens no response stood for. Unlinked screens are matched before ones derived from some
    other response (that response may still come)."""

    def __init__(
        self,
        resources: Iterable[Json],
        *,
        references: Mapping[str, str] | None = None,
        sex_of: Callable[[str | None], str | None] = lambda _: None,
        cut_points: CutPoints | None = None,
    ) -> None:
        urls = references or {}
        pending: list[tuple[Score, frozenset[str]]] = []
        for event in screening_events(resources, urls):
            # The patient's sex is known once the event is grouped (the AUDIT-C cut point).
            first = score_event(event, urls, None, cut_points)
            if first is None:
                continue
            sex = sex_of(first.subject_ref)
            score = first if sex is None else score_event(event, urls, sex, cut_points)
            if score is not None:
                pending.append((score, frozenset(derived_links(event, urls))))
        pending.sort(key=lambda p: (p[0].authored or "", p[0].response_ref or ""))
        self._pending = pending
        self._gone: set[int] = set()
        # Indexes, so a stream of n responses costs n look-ups, not n × screens.
        self._by_link: dict[str, list[int]] = {}
        self._by_key: dict[_TwinKey, dict[str | None, list[int]]] = {}
        for index, (score, links) in enumerate(pending):
            for link in links:
                self._by_link.setdefault(link, []).append(index)
            bucket = self._by_key.setdefault(_twin_key(score), {})
            bucket.setdefault(score.subject_ref, []).append(index)

    def __len__(self) -> int:
        return len(self._pending) - len(self._gone)

    def absorb(self, response: Score) -> None:
        if response.response_ref is not None:
            self._gone.update(self._by_link.pop(response.response_ref, ()))
        key = _twin_key(response)
        if response.total is None or not key[2]:
            return
        bucket = self._by_key.get(key, {})
        # A screen or response without a patient matches any patient (``same_screen``).
        subjects = (bucket if response.subject_ref is None
                    else (response.subject_ref, None))
        twins = [i for subject in subjects for i in bucket.get(subject, ())
                 if i not in self._gone and same_screen(response, self._pending[i][0])]
        if twins:  # unlinked first, then the oldest
            self._gone.add(min(twins, key=lambda i: (bool(self._pending[i][1]), i)))

    def remaining(self) -> list[Score]:
        return [s for i, (s, _) in enumerate(self._pending) if i not in self._gone]


_TwinKey = tuple[str | None, int | None, str]


def _twin_key(score: Score) -> _TwinKey:
    """What ``same_screen`` compares besides the patient: instrument, total, calendar day."""
    return score.instrument, score.total, (score.authored or "")[:10]


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()
