"""Code systems, codes and identifier systems shared across the package.

Clinical codes are LOINC, SNOMED CT, ICD-10-CM and HL7 terminology, as US Core and the
FHIR care-plan-category value set use them; the
``https://bhi-fhir.dev/fhir/...`` systems are this project's own, for concepts no public code
system names (SNOMED CT has no concept for "collaborative care" care plans).
"""

from __future__ import annotations

from typing import Final

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
CPT: Final = "http://www.ama-assn.org/go/cpt"
HCPCS: Final = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CAREPLAN_CATEGORY_US_CORE: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
REQUEST_PRIORITY: Final = "http://hl7.org/fhir/request-priority"

# CarePlan categories (https://hl7.org/fhir/6.0.0-ballot3/valueset-care-plan-category.html)
ASSESS_PLAN: Final = "assess-plan"
MENTAL_HEALTH_CARE_PLAN: Final = "718347000"  # SNOMED "Mental health care plan (record artifact)"
MENTAL_HEALTH_CRISIS_PLAN: Final = "401276009"  # SNOMED "Mental health crisis plan"

# This project's own systems.
BHI_BASE: Final = "https://bhi-fhir.dev/fhir"
BHI_IDENTIFIER: Final = f"{BHI_BASE}/identifier"  # deterministic business identifiers
BHI_ACTIVITY: Final = f"{BHI_BASE}/CodeSystem/bhi-activity"  # Task/Encounter codes of our own
BHI_DEVICE_REF: Final = "Device/bhi-fhir"  # the service, as Provenance agent
BHI_PROTOCOL: Final = f"{BHI_BASE}/PlanDefinition/bhi-protocol"  # profiles/plandefinitions

# A care-management contact (a time-ledger entry) is an Encounter whose `type` carries this
# coding; billing counts its minutes, the workflow counts it as a care-manager contact.
CARE_MANAGEMENT_CONTACT: Final = "care-management-contact"

# The bhi-fhir package's profiles (profiles/fsh, built to profiles/package) that each kind of
# resource bhi-fhir writes claims in meta.profile, so a server validates it against its own
# profile. The protocol's CarePlans, Tasks and ServiceRequests name theirs in
# ActivityDefinition.profile (profiles/activitydefinitions), which the engine copies.
BHI_PROFILE: Final = f"{BHI_BASE}/StructureDefinition/"
SCREENING_ITEM_PROFILE: Final = f"{BHI_PROFILE}bhi-screening-item"
SCREENING_TOTAL_PROFILE: Final = f"{BHI_PROFILE}bhi-screening-total"
SCREENING_PANEL_PROFILE: Final = f"{BHI_PROFILE}bhi-screening-panel"
CONSENT_PROFILE: Final = f"{BHI_PROFILE}bhi-consent"
PROVENANCE_PROFILE: Final = f"{BHI_PROFILE}bhi-provenance"


def task_profile(code: str) -> str:
    """The profile of a hand-off Task with bhi-activity ``code`` (bhi-task-<code>)."""
    return f"{BHI_PROFILE}bhi-task-{code}"


def claims(profile: str) -> dict[str, list[str]]:
    """A fresh ``meta`` claiming ``profile`` (fresh: writers append their tags to it)."""
    return {"profile": [profile]}
