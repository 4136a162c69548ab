"""EPDS — Edinburgh Postnatal Depression Scale, 10 items (Cox, Holden & Sagovsky 1987).

Panel 71354-5, total 99046-5; items scored 0–3, range 0–30. Several items are reverse-scored
on the paper form, so points come from the answer weights (our Questionnaire
``profiles/questionnaires/epds.json`` carries them) or from valueInteger — never from the
position of an answer. Item LOINC codes are UNVERIFIED: items are keyed by our linkIds.
Positive at >= 10 (HEDIS DSF instrument list); bands: below 10 ``below-threshold``, 10–12
``possible-depression``, 13 and over ``probable-depression`` (the >= 13 "probable depression"
cut point some programs use, HEDIS DSF-E). Item 10 (thoughts of self-harm) above 0 →
``suicide-risk``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bhi_fhir.instruments.result import SUICIDE_RISK
from bhi_fhir.instruments.spec import Band, InstrumentSpec, Item, Judgement

ITEM_10 = "epds-10"

_TEXTS = (
    "Able to laugh and see the funny side of things",
    "Looked forward with enjoyment to things",
    "Blamed myself unnecessarily when things went wrong",
    "Anxious or worried for no good reason",
    "Felt scared or panicky for no very good reason",
    "Things have been getting on top of me",
    "So unhappy that I have had difficulty sleeping",
    "Felt sad or miserable",
    "So unhappy that I have been crying",
    "The thought of harming myself has occurred to me",
)

ITEMS = tuple(
    Item(f"epds-{n}", str(n), text, (f"epds-item-{n}", f"epds-q{n}", f"epds{n}"))
    for n, text in enumerate(_TEXTS, start=1)
)


def judge(
    spec: InstrumentSpec, points: Mapping[str, int], complete: bool, total: int | None,
    sex: str | None, positive: bool | None = None,
) -> Judgement:
    return Judgement(flags=(SUICIDE_RISK,) if points.get(ITEM_10, 0) > 0 else ())


SPEC = InstrumentSpec(
    id="epds",
    title="EPDS",
    panel_code="71354-5",
    total_code="99046-5",
    items=ITEMS,
    bands=(Band(0, 9, "below-threshold"), Band(10, 12, "possible-depression"),
           Band(13, 30, "probable-depression")),
    cut_point=10,
    canonical_tokens=("71354-5", "epds", "edinburgh"),
    total_aliases=("epds-total",),
    judge=judge,
    source="Cox, Holden & Sagovsky 1987",
)
