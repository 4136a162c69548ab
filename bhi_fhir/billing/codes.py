"""Monthly care-management minutes → the CPT/HCPCS codes to bill, and how many units.

Pure: minutes, program, month kind and payer rules in; ``list[BilledCode]`` out.
Every threshold is a value of :class:`Thresholds` with a sourced default, so a practice plan
can override it; nothing else in the package hard-codes a minute count.

Sources: CMS MLN909432 "Behavioral Health Integration Services", the CPT descriptors and the
CPT time midpoint rule (Medicare, CY2025–CY2026).

Collaborative care (CoCM, CPT descriptors — CPT midpoint rule, a unit counts once its midpoint is
passed):

=============  ==========================  ===========================================
month          minutes                     codes
=============  ==========================  ===========================================
either         < 16                        nothing
initial        16–35                       G2214 (99492 not reached)
initial        36–85                       99492
initial        86–115 / 116–145 / …        99492 + 99494 ×1 / ×2 / … (one unit per 30)
subsequent     16–30                       G2214 (99493 not reached)
subsequent     31–75                       99493
subsequent     76–105 / 106–135 / …        99493 + 99494 ×1 / ×2 / …
=============  ==========================  ===========================================

+99494 units are capped per payer (NC Medicaid 4, one vendor 2) by
:class:`PayerRules.max_99494_units`; no cap unless the payer sets one.

General BHI (CPT descriptors): 99484 at ≥ 20 minutes ("at least": the CPT 99484 descriptor), billed
as G0323 when the billing clinician is a clinical psychologist, clinical social worker,
mental-health counselor or marriage and family therapist. Never with CoCM codes for the same
patient-month (CMS MLN909432) — that is a patient-month rule, enforced in
:mod:`bhi_fhir.billing.ledger`.

RHC/FQHC (AHRQ, CY2026): from 2026 they bill the same CoCM codes (G0512 is retired) under the same
midpoint rule; the 2018–2025 rules (G0511/G0512) are not implemented and are refused.

APCM behavioral-health add-ons (CY2026 PFS): G0568 / G0569 / G0570, valued like 99492 / 99493
/ 99484, billed only with an APCM base code (G0556–G0558) by the same practitioner in the same
month, instead of (never with) the standalone CoCM/BHI codes; no 99494 equivalent. They are not
time-based (CY2026 PFS; GillCompliance), so any counted minute in the month qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from bhi_fhir.codes import CPT, HCPCS

__all__ = [
    "APCM_ADDON_CODES",
    "APCM_BASE_CODES",
    "COCM_CODES",
    "DEFAULT_THRESHOLDS",
    "GENERAL_BHI_CODES",
    "MONTHLY_CARE_MANAGEMENT_CODES",
    "NON_PHYSICIAN_BHI_QUALIFICATIONS",
    "BilledCode",
    "MonthKind",
    "PayerRules",
    "Program",
    "Qualification",
    "Setting",
    "Thresholds",
    "UnsupportedBillingRules",
    "code_system",
    "minimum_minutes",
    "select_codes",
]

Program = Literal["cocm", "bhi"]
MonthKind = Literal["initial", "subsequent"]
Setting = Literal["office", "fqhc", "rhc"]
# Who bills: physician or NPP (NP, PA, CNS, CNM) for CoCM (CMS MLN909432, care team); G0323 adds
# clinical psychologists, clinical social workers and, since 2024, counselors and MFTs (HCPCS
# G0323).
Qualification = Literal[
    "physician", "np", "pa", "cns", "cnm", "psychologist", "csw", "counselor", "mft"
]
NON_PHYSICIAN_BHI_QUALIFICATIONS: Final[frozenset[str]] = frozenset(
    {"psychologist", "csw", "counselor", "mft"}
)

COCM_INITIAL: Final = "99492"
COCM_SUBSEQUENT: Final = "99493"
COCM_ADDON: Final = "99494"
COCM_FIRST_30: Final = "G2214"
GENERAL_BHI: Final = "99484"
GENERAL_BHI_NON_PHYSICIAN: Final = "G0323"
APCM_BH_INITIAL: Final = "G0568"
APCM_BH_SUBSEQUENT: Final = "G0569"
APCM_BH_GENERAL: Final = "G0570"

COCM_CODES: Final[frozenset[str]] = frozenset(
    {COCM_INITIAL, COCM_SUBSEQUENT, COCM_ADDON, COCM_FIRST_30, "G0512"}
)
GENERAL_BHI_CODES: Final[frozenset[str]] = frozenset(
    {GENERAL_BHI, GENERAL_BHI_NON_PHYSICIAN, "G0511"}
)
APCM_BASE_CODES: Final[frozenset[str]] = frozenset({"G0556", "G0557", "G0558"})
APCM_ADDON_CODES: Final[frozenset[str]] = frozenset(
    {APCM_BH_INITIAL, APCM_BH_SUBSEQUENT, APCM_BH_GENERAL}
)
# Monthly, non-face-to-face codes: an Encounter carrying one is a month's bill, not a visit
# whose time must be subtracted from care-management time.
MONTHLY_CARE_MANAGEMENT_CODES: Final[frozenset[str]] = (
    COCM_CODES | GENERAL_BHI_CODES | APCM_BASE_CODES | APCM_ADDON_CODES
)

APCM_BH_FIRST_YEAR: Final = 2026  # CY2026 PFS: G0568–G0570 effective 1 Jan 2026
RHC_FQHC_CPT_FIRST_YEAR: Final = 2026  # AHRQ, CY2026: G0512 retired 1 Jan 2026


class UnsupportedBillingRules(ValueError):
    """The combination asked for is outside the rules this module implements."""


@dataclass(frozen=True, slots=True)
class BilledCode:
    """One line of a month's bill: a CPT/HCPCS code and its units."""

    code: str
    units: int = 1

    @property
    def system(self) -> str:
        return code_system(self.code)

    def __str__(self) -> str:
        return self.code if self.units == 1 else f"{self.code} x{self.units}"


def code_system(code: str) -> str:
    """CPT for all-digit codes, HCPCS Level II for letter-led codes (G2214, G0323, …)."""
    return CPT if code[:1].isdigit() else HCPCS


class Thresholds(BaseModel):
    """Minute thresholds; defaults from the CPT descriptors and the CPT time midpoint rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    g2214_from: int = Field(
        default=16, ge=1, description="G2214 reportable from (CPT midpoint rule)"
    )
    cocm_initial_from: int = Field(
        default=36, ge=1, description="99492 reportable from (CPT midpoint rule)"
    )
    cocm_subsequent_from: int = Field(
        default=31, ge=1, description="99493 reportable from (CPT midpoint rule)"
    )
    addon_initial_from: int = Field(
        default=86,
        ge=1,
        description="first +99494, initial month (CPT midpoint rule; BCBSND CoCM policy)",
    )
    addon_subsequent_from: int = Field(
        default=76,
        ge=1,
        description="first +99494, subsequent month (CPT midpoint rule; BCBSND CoCM policy)",
    )
    addon_step: int = Field(
        default=30,
        ge=1,
        description="each further +99494 unit (CPT 99494: each additional 30 minutes)",
    )
    general_bhi_from: int = Field(
        default=20,
        ge=1,
        description="99484/G0323 at least (the 99484 descriptor: at least 20 minutes)",
    )


DEFAULT_THRESHOLDS: Final = Thresholds()


class PayerRules(BaseModel):
    """What one payer changes about the codes (add-on caps vary: NC Medicaid allows 4 a month)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    max_99494_units: int | None = Field(
        default=None, ge=0, description="+99494 units per patient-month; None = no payer cap"
    )


def select_codes(
    program: Program,
    month_kind: MonthKind,
    minutes: int,
    *,
    setting: Setting | None = None,
    payer: PayerRules | None = None,
    clinician: Qualification | None = None,
    apcm_base_same_practitioner: bool = False,
    year: int | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[BilledCode]:
    """The codes for one patient-month of ``program`` with ``minutes`` of counted time.

    ``clinician`` is the billing clinician's qualification (G0323 vs 99484).
    ``apcm_base_same_practitioner``: an APCM base code is billed for this patient-month by the
    same practitioner, so the APCM behavioral-health add-on replaces the standalone codes.
    ``year`` is the service year (``None`` = current rules, CY2026); RHC/FQHC before 2026 is
    refused rather than guessed.
    """
    if minutes < 0:
        raise ValueError(f"minutes must not be negative: {minutes}")
    if program not in ("cocm", "bhi"):
        raise ValueError(f"unknown program {program!r}")
    if month_kind not in ("initial", "subsequent"):
        raise ValueError(f"unknown month kind {month_kind!r}")
    if setting in ("fqhc", "rhc") and year is not None and year < RHC_FQHC_CPT_FIRST_YEAR:
        raise UnsupportedBillingRules(
            f"{setting.upper()} billing before {RHC_FQHC_CPT_FIRST_YEAR} (G0511/G0512) "
            "is not implemented"
        )

    if apcm_base_same_practitioner and (year is None or year >= APCM_BH_FIRST_YEAR):
        if minutes == 0:
            return []
        if program == "bhi":
            return [BilledCode(APCM_BH_GENERAL)]
        return [BilledCode(APCM_BH_INITIAL if month_kind == "initial" else APCM_BH_SUBSEQUENT)]

    if program == "bhi":
        if minutes < thresholds.general_bhi_from:
            return []
        if clinician in NON_PHYSICIAN_BHI_QUALIFICATIONS:
            return [BilledCode(GENERAL_BHI_NON_PHYSICIAN)]
        return [BilledCode(GENERAL_BHI)]

    if month_kind == "initial":
        base, base_from, addon_from = (
            COCM_INITIAL,
            thresholds.cocm_initial_from,
            thresholds.addon_initial_from,
        )
    else:
        base, base_from, addon_from = (
            COCM_SUBSEQUENT,
            thresholds.cocm_subsequent_from,
            thresholds.addon_subsequent_from,
        )
    if minutes < base_from:
        return [BilledCode(COCM_FIRST_30)] if minutes >= thresholds.g2214_from else []
    codes = [BilledCode(base)]
    if minutes >= addon_from:
        units = 1 + (minutes - addon_from) // thresholds.addon_step
        cap = payer.max_99494_units if payer is not None else None
        if cap is not None:
            units = min(units, cap)
        if units > 0:
            codes.append(BilledCode(COCM_ADDON, units))
    return codes


def minimum_minutes(
    program: Program, month_kind: MonthKind, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[int, str]:
    """The fewest minutes that bill anything, and the code they bill (for not-billable reasons)."""
    if program == "bhi":
        return thresholds.general_bhi_from, f"{GENERAL_BHI}/{GENERAL_BHI_NON_PHYSICIAN}"
    return thresholds.g2214_from, COCM_FIRST_30
