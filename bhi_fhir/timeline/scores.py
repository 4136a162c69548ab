"""Scores as facts: one screen's fact (total, bounds, severity, source, day), and whether a
screen is dated after ``today`` in the practice's zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, tzinfo
from typing import Any, Final

from bhi_fhir.fhirjson import day_in as _practice_day  # that day in the practice's zone
from bhi_fhir.instruments.result import Score
from bhi_fhir.timeline.model import LABELS
from bhi_fhir.timeline.refs import prune, versioned

__all__ = ["is_future", "is_future_dated", "practice_day", "score_fact"]

_SUICIDE_ITEM_UNKNOWN: Final = "suicide-item-unknown"  # observation_scores.SUICIDE_ITEM_UNKNOWN


def is_future(value: Any, today: date, zone: tzinfo | None) -> bool:
    """True when ``value`` is after ``today`` at its own precision (a "2026-12" is after any
    day of November 2026; FHIR R4 dateTime allows year and year-month)."""
    day = _practice_day(value, zone)
    if day is not None:
        return day > today
    if not isinstance(value, str) or len(value) not in (4, 7):
        return False
    try:
        year, month = int(value[:4]), int(value[5:7]) if len(value) == 7 else 0
    except ValueError:
        return False
    return (year, month) > (today.year, today.month if month else 0)



def is_future_dated(value: Any, today: date, zone: tzinfo | None) -> bool:
    """A screen authored (``value``) after ``today`` in the practice's ``zone``: no fact."""
    return is_future(value, today, zone)



def practice_day(value: Any, zone: tzinfo | None) -> date | None:
    """The calendar day of a FHIR date/dateTime in the practice's ``zone`` (None: unreadable)."""
    return _practice_day(value, zone)



def score_fact(
    score: Score, versions: Mapping[str, str | None], today: date, zone: tzinfo | None
) -> dict[str, Any]:
    ref = score.response_ref or ""
    day = _practice_day(score.authored, zone)
    low, high = score.bounds or (None, None)
    # What a rule's reason shows: the total, or what an incomplete response's answers reach.
    text = (str(score.total) if score.total is not None
            else f"at least {low} (incomplete)" if low is not None else None)
    return prune(
        {
            "instrument": score.instrument,
            "label": LABELS.get(score.instrument or "", score.instrument),
            "status": score.status,
            "total": score.total,
            # Lowest/highest total the answers allow (= total when complete): a rule tests
            # ``totalAtLeast >= cut point`` so a certainly-positive incomplete screen counts.
            "totalAtLeast": low,
            "totalAtMost": high,
            "totalText": text,
            "severity": score.severity,
            "positive": score.positive,
            "complete": score.complete,
            "flags": list(score.flags),
            # A total read without its suicide item (a flowsheet or Synthea total): the risk
            # is unknown, not absent — the rules ask the clinician (observation_scores).
            "suicideItemUnknown": True if _SUICIDE_ITEM_UNKNOWN in score.flags else None,
            "items": dict(score.items),
            "response": ref or None,
            "source": versioned(ref, versions.get(ref)) if ref else None,
            "date": day.isoformat() if day else None,
            "daysAgo": (today - day).days if day else None,
        }
    )
