"""Treat-to-target: baseline → latest for PHQ-9 and GAD-7 (NCQA DRR-E), and the primary target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Final

from bhi_fhir.fhirjson import day_in as _practice_day  # that day in the practice's zone
from bhi_fhir.instruments.result import Score
from bhi_fhir.timeline.model import TimelineSettings
from bhi_fhir.timeline.refs import prune

__all__ = ["MEASURES", "primary_target", "target_of"]

MEASURES: Final = ("phq9", "gad7")  # treat-to-target instruments, NCQA DRR-E


def target_of(
    instrument: str,
    scores: Sequence[tuple[Score, dict[str, Any]]],
    start: date | None,
    settings: TimelineSettings,
) -> dict[str, Any] | None:
    """Baseline → latest for one instrument (NCQA DRR-E), or None without a baseline."""
    if start is None:
        return None
    since = date.fromordinal(start.toordinal() - settings.baseline_lookback_days)
    series = [
        fact
        for score, fact in scores
        if score.instrument == instrument
        and score.complete
        and score.total is not None
        and (day := _practice_day(score.authored, settings.zone)) is not None
        and day >= since
    ]
    if not series:
        return None
    baseline, latest = series[0], series[-1]
    followed_up = latest is not baseline
    improvement: float | None = None
    if followed_up and baseline["total"] > 0:
        improvement = round((baseline["total"] - latest["total"]) * 100 / baseline["total"], 1)
    remission = followed_up and latest["total"] < settings.remission_below
    response = improvement is not None and improvement >= settings.response_drop_percent
    return prune(
        {
            "instrument": instrument,
            "baseline": baseline,
            "latest": latest,
            "followUps": len(series) - 1,
            "improvementPercent": improvement,
            "remission": remission,
            "response": response,
        }
    )



def primary_target(
    targets: Mapping[str, dict[str, Any]], settings: TimelineSettings
) -> dict[str, Any] | None:
    """PHQ-9 if its baseline was positive, else GAD-7 if positive, else whichever exists."""
    phq9, gad7 = targets.get("phq9"), targets.get("gad7")
    if phq9 is not None and phq9["baseline"]["total"] >= settings.phq9_positive:
        return phq9
    if gad7 is not None and gad7["baseline"]["total"] >= settings.gad7_positive:
        return gad7
    return phq9 or gad7
