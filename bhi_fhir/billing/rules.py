"""The practice's billing configuration, with Medicare defaults (CMS MLN909432, CPT).

Everything the billing core needs from the practice is here and nowhere else. A practice
states it in its practice plan (:mod:`bhi_fhir.practice_plan`: ``[team]`` and ``[billing]``);
:func:`rules_from_plan` turns that into :class:`BillingRules`:

=========================================  =================================================
practice plan                              BillingRules
=========================================  =================================================
billing.program ``cocm`` / ``general-bhi``   program ``cocm`` / ``bhi``
billing.setting ``physician-office``/fqhc/rhc  setting ``office`` / ``fqhc`` / ``rhc``
billing.timezone                           timezone
billing.*_minutes                          thresholds (CPT descriptors and midpoint rule)
billing.addon_max_units                    default_payer.max_99494_units (payer caps vary)
billing.payers.<key>.addon_max_units       payers[<key>].max_99494_units
billing.billing_practitioner_qualification billing_practitioner_qualification (HCPCS G0323)
team.billing_practitioner                  billing_practitioner (CMS MLN909432)
team.care_managers                         care_managers (whose minutes count, CMS MLN909432)
team.psychiatric_consultant                psychiatric_consultants (matched on CareTeams)
consent.scope                              consent_scope (CMS MLN909432)
=========================================  =================================================

A bare ``BillingRules`` file (``bhi-fhir bill --rules``) is still accepted for what the plan
does not carry (more billing practitioners, consultant role codes, look-back windows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
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
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule
from bhi_fhir.workflow.plan_settings import enrollment_rule

if TYPE_CHECKING:
    from bhi_fhir.practice_plan import PracticePlan

__all__ = ["DEFAULT_INITIATING_VISIT_CODES", "BillingRules", "CodingKey", "rules_from_plan"]


class CodingKey(BaseModel):
    """A (system, code) pair to match a Coding against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str
    code: str


def _codes(system: str, *codes: str) -> list[CodingKey]:
    return [CodingKey(system=system, code=c) for c in codes]


# CMS MLN909432 "Initiating visit": an E/M (office/outpatient 99202–99205, 99211–99215), AWV
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
        description="program of a time entry that does not name one: cocm (99492/99493/"
        "99494/G2214) or bhi (general BHI: 99484/G0323)",
    )
    setting: Setting | None = Field(
        default=None,
        description="office (None), fqhc or rhc (RHCs and FQHCs had codes of their own: "
        "G0511/G0512)",
    )
    timezone: str = Field(
        default="UTC", description="IANA zone the practice's calendar months are counted in"
    )
    billing_practitioner: str | None = Field(
        default=None,
        description="default billing practitioner (a physician or NPP), e.g. 'Practitioner/123'",
    )
    billing_practitioner_qualification: Qualification = "physician"
    billing_practitioners: dict[str, Qualification] = Field(
        default_factory=dict,
        description="other billing practitioners, chosen per patient when on the care team",
    )
    care_managers: list[str] = Field(
        default_factory=list,
        description="the practice's BHCMs: CoCM minutes are their time only (CPT "
        "descriptors; CMS MLN909432)",
    )
    care_manager_roles: list[CodingKey] = Field(
        default_factory=list,
        description="CareTeam.participant.role codings that mark a care manager (none by "
        "default: no public source names one code for the BHCM)",
    )
    psychiatric_consultants: list[str] = Field(
        default_factory=list, description="references of the practice's psychiatric consultants"
    )
    psychiatric_consultant_roles: list[CodingKey] = Field(
        default_factory=lambda: [_PSYCHIATRIST_ROLE],
        description="CareTeam.participant.role codings that mark a psychiatric consultant",
    )
    consent_scope: str = Field(
        default="treatment", description="Consent.scope code of a BHI consent"
    )
    initiating_visit_codes: list[CodingKey] = Field(
        default_factory=lambda: list(DEFAULT_INITIATING_VISIT_CODES)
    )
    initiating_visit_lookback_days: int = Field(
        default=365,
        ge=0,
        description="an initiating visit is needed for anyone 'not seen within "
        "the past year' (CMS MLN909432)",
    )
    episode_gap_months: int = Field(
        default=6,
        ge=1,
        description="months without CoCM service that end an episode (NC Medicaid citing AMA)",
    )
    default_payer: PayerRules = Field(default_factory=PayerRules)
    payers: dict[str, PayerRules] = Field(
        default_factory=dict,
        description="payer rules by Coverage.payor reference, identifier value or display",
    )
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    enrollment: EnrollmentRule = Field(
        default=OWN_ENROLLMENT,
        description="which CarePlans are the practice's BHI episodes (their end ends the "
        "episode); another service's mental-health care plan is not one",
    )

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


_PLAN_SETTINGS: Final[dict[str, Setting]] = {
    "physician-office": "office",
    "fqhc": "fqhc",
    "rhc": "rhc",
}


def rules_from_plan(
    plan: PracticePlan,
    *,
    billing_practitioner: str | None = None,
    timezone: str | None = None,
) -> BillingRules:
    """The practice plan's billing and team sections as :class:`BillingRules` (table above).

    ``billing_practitioner`` / ``timezone`` override the plan (the CLI options).
    """
    billing = plan.billing
    default_cap = billing.addon_max_units
    return BillingRules(
        program="bhi" if billing.program == "general-bhi" else "cocm",
        setting=_PLAN_SETTINGS[billing.setting],
        timezone=timezone or billing.timezone,
        billing_practitioner=billing_practitioner or plan.team.billing_practitioner.reference,
        billing_practitioner_qualification=billing.billing_practitioner_qualification,
        care_managers=[m.reference for m in plan.team.care_managers],
        psychiatric_consultants=[plan.team.psychiatric_consultant.reference],
        consent_scope=plan.consent.scope,
        default_payer=PayerRules(max_99494_units=default_cap),
        payers={
            key: PayerRules(
                name=payer.name or key,
                max_99494_units=(
                    payer.addon_max_units if payer.addon_max_units is not None else default_cap
                ),
            )
            for key, payer in billing.payers.items()
        },
        thresholds=Thresholds(
            g2214_from=billing.g2214_minutes,
            cocm_initial_from=billing.cocm_first_month_minutes,
            cocm_subsequent_from=billing.cocm_later_month_minutes,
            addon_initial_from=billing.addon_first_month_minutes,
            addon_subsequent_from=billing.addon_later_month_minutes,
            addon_step=billing.addon_unit_minutes,
            general_bhi_from=billing.general_bhi_minutes,
        ),
        enrollment=enrollment_rule(plan),
    )
