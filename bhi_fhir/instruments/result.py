"""The result of scoring one QuestionnaireResponse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

InstrumentId = Literal["phq9", "phq2", "phqa", "gad7", "gad2", "cssrs", "auditc", "epds"]

SUICIDE_RISK = "suicide-risk"
TOTAL_MISMATCH = "total-mismatch"
INCOMPLETE = "incomplete"
UNRECOGNISED = "unrecognised"


@dataclass(frozen=True, slots=True)
class Score:
    """What one QuestionnaireResponse says, scored.

    ``items`` maps the instrument's item key (its LOINC code) to the points resolved for it;
    an item with no answer is absent. ``total`` and ``severity`` are ``None`` unless the
    instrument is complete: a partial response is never summed.
    For the C-SSRS screener ``severity`` is the triage risk level (low/moderate/high) or None.
    """

    instrument: InstrumentId | None
    total: int | None
    severity: str | None
    positive: bool | None
    complete: bool
    flags: tuple[str, ...] = ()
    items: dict[str, int] = field(default_factory=dict)
    response_ref: str | None = None  # "QuestionnaireResponse/<id>"
    subject_ref: str | None = None  # "Patient/<id>"
    authored: str | None = None  # ISO date/dateTime from QuestionnaireResponse.authored
    reported_total: float | None = None  # a total the response itself carried
    codings: dict[str, dict[str, str]] = field(default_factory=dict)  # item key -> answer Coding

    @property
    def suicide_risk(self) -> bool:
        return SUICIDE_RISK in self.flags
