"""The result of scoring one QuestionnaireResponse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

InstrumentId = Literal["phq9", "phq2", "phqa", "gad7", "gad2", "cssrs", "auditc", "epds"]

SUICIDE_RISK = "suicide-risk"
TOTAL_MISMATCH = "total-mismatch"
INCOMPLETE = "incomplete"
UNRECOGNISED = "unrecognised"
# An incomplete sum scale whose answered items already decide the screen: positive when they
# reach the cut point with every missing item at 0, negative when they cannot reach it with
# every missing item at its maximum. ``total`` stays None.
POSITIVE_BY_BOUND = "positive-by-bound"
NEGATIVE_BY_BOUND = "negative-by-bound"
# The response was entered in error: not scored, never a screen.
ENTERED_IN_ERROR = "entered-in-error"
# The response is not final (status in-progress or stopped, or no status): never a screen.
NOT_FINAL = "not-final"
# QuestionnaireResponse.status values whose answers are final (FHIR R4 QuestionnaireResponse).
FINAL_STATUSES = frozenset({"completed", "amended"})


@dataclass(frozen=True, slots=True)
class Score:
    """What one QuestionnaireResponse says, scored.

    ``items`` maps the instrument's item key (its LOINC code) to the points resolved for it;
    an item with no answer is absent. ``total`` and ``severity`` are ``None`` unless the
    instrument is complete: a partial response is never summed. ``bounds`` is the lowest and
    highest total the answers allow (missing items at 0 / at their maximum), for a sum scale
    whose response is final; equal to ``(total, total)`` when complete. ``positive`` is also
    set for an incomplete response when ``bounds`` decides it (flag ``positive-by-bound`` or
    ``negative-by-bound``).
    For the C-SSRS screener ``severity`` is the triage risk level (low/moderate/high) or None.

    ``status`` is the response's status. Only ``completed`` and ``amended`` are final: any other
    response has no total, band, positive or bounds and is never complete (flag
    ``not-final``), but keeps its ``suicide-risk`` flag and a C-SSRS "high" level — a crisis
    answer is never lost. An ``entered-in-error`` response is not scored at all.
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
    bounds: tuple[int, int] | None = None  # (lowest, highest) possible total
    # The scorer always sets it from the response; the default serves Scores built by hand.
    status: str | None = "completed"

    def __post_init__(self) -> None:
        # A known total is its own bound: a Score built with a total only (from an Observation,
        # in a test) still tells the rules what it reaches.
        if self.bounds is None and self.total is not None:
            object.__setattr__(self, "bounds", (self.total, self.total))

    @property
    def suicide_risk(self) -> bool:
        return SUICIDE_RISK in self.flags

    @property
    def final(self) -> bool:
        """The response's answers are final: only then is it a screen."""
        return self.status in FINAL_STATUSES
