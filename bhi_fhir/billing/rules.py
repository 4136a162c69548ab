"""The practice's billing configuration, with defaults sourced from bhi-domain.md §4.

A stand-in for the billing section of the practice plan (``bhi_fhir.practice_plan``, being
built by the workflow engine): once that exists it should carry a ``billing: BillingRules``
field (or build one), and the CLI should read it from the plan file instead of defaults.
Everything the billing core needs from the practice is here and nowhere else.
"""

from __future__ import annotations

from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bhi_fhir.billing.codes import (
    DEFAULT_THRESHOLDS,
    PayerRules,
    Program,
    Qualification,
    Setting,
    Thresholds,
)
from bhi_fhir.codes import CPT, HCPCS, SNOMED

__all__ = ["DEFAULT_INITIATING_VISIT_CODES", "BillingRules", "CodingKey"]


class CodingKey(BaseModel):
    """A (system, code) pair to match a Coding against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str
    code: str


def _codes(system: str, *codes: str) -> list[CodingKey]:
    return [CodingKey(system=system, code=c) for c in codes]


# §4.3 "Initiating visit": an E/M (office/outpatient 99202–99205, 99211–99215), AWV
# (G0438/G0439), IPPE (G0402), TCM (99495/99496) or a psychiatric diagnostic evaluation (90791).
DEFAULT_INITIATING_VISIT_CODES: Final[tuple[CodingKey, ...]] = (
    *_codes(CPT, "99202", "99203", "99204", "99205"),
    *_codes(CPT, "99211", "99212", "99213", "99214", "99215"),
    *_codes(CPT, "99495", "99496", "90791"),
    *_codes(HCPCS, "G0438", "G0439", "G0402"),
)

# SNOMED 80584001 "Psychiatrist (occupation)" — in the US Core CareTeam member-role value set.
_PSYCHIATRIST_ROLE: Final = CodingKey(system=SNOMED, code="80584001")


class BillingRules(BaseModel):
    """Billing program, setting, team, payers and thresholds of one practice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Program = Field(
        default="cocm",
        description="program of a time entry that does not name one (§4.1: cocm or bhi)",
    )
    setting: Setting | None = Field(default=None, description="office (None), fqhc or rhc (§4.3)")
    timezone: str = Field(
        default="UTC", description="IANA zone the practice's calendar months are counted in"
    )
    billing_practitioner: str | None = Field(
        default=None, description="default billing practitioner, e.g. 'Practitioner/123' (§4.3)"
    )
    billing_practitioner_qualification: Qualification = "physician"
    billing_practitioners: dict[str, Qualification] = Field(
        default_factory=dict,
        description="other billing practitioners, chosen per patient when on the care team",
    )
    psychiatric_consultants: list[str] = Field(
        default_factory=list, description="references of the practice's psychiatric consultants"
    )
    psychiatric_consultant_roles: list[CodingKey] = Field(
        default_factory=lambda: [_PSYCHIATRIST_ROLE],
        description="CareTeam.participant.role codings that mark a psychiatric consultant",
    )
    consent_scope: str = Field(
        default="treatment", description="Consent.scope code of a BHI consent (§4.3 Consent)"
    )
    initiating_visit_codes: list[CodingKey] = Field(
        default_factory=lambda: list(DEFAULT_INITIATING_VISIT_CODES)
    )
    initiating_visit_lookback_days: int = Field(
        default=365, ge=0, description="'not seen within the past year' (§4.3)"
    )
    episode_gap_months: int = Field(
        default=6, ge=1, description="months without CoCM service that end an episode (§2.2)"
    )
    default_payer: PayerRules = Field(default_factory=PayerRules)
    payers: dict[str, PayerRules] = Field(
        default_factory=dict,
        description="payer rules by Coverage.payor reference, identifier value or display",
    )
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def qualification_of(self, practitioner: str | None) -> Qualification:
        if practitioner is not None and practitioner in self.billing_practitioners:
            return self.billing_practitioners[practitioner]
        return self.billing_practitioner_qualification

    def payer_rules(self, *keys: str | None) -> PayerRules:
        for key in keys:
            if key is not None and key in self.payers:
                return self.payers[key]
        return self.default_payer
