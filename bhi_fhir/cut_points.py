"""A screening instrument's cut point: one number, or one per sex (AUDIT-C).

Shared by the instruments, whose specs declare their published cut points with it, and the
practice plan, which overrides them with its own; so it sits below both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CutPoint", "SexCutPoints"]


@dataclass(frozen=True, slots=True)
class SexCutPoints:
    """Cut points that differ by the patient's sex (AUDIT-C). A patient not known to be male
    gets the women's cut point, the lower one, so a positive screen is not missed."""

    male: int
    female: int

    def __call__(self, sex: str | None) -> int:
        return self.male if sex == "male" else self.female


# One instrument's cut point as the practice plan gives it: a number, or one per sex.
CutPoint = int | SexCutPoints
