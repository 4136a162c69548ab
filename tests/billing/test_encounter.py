"""Billing Encounter, Provenance and transaction: US Core shape, R4B and fhirclient strict R4."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhir.resources.R4B.encounter import Encounter as R4BEncounter
from fhir.resources.R4B.provenance import Provenance as R4BProvenance
from fhirclient.models.bundle import Bundle as StrictBundle
from fhirclient.models.encounter import Encounter as StrictEncounter
from fhirclient.models.provenance import Provenance as StrictProvenance

from bhi_fhir.billing.encounter import (
    billing_encounter,
    billing_provenance,
    billing_transaction,
)
from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
from bhi_fhir.billing.representation import BILLED_UNITS_EXT, PROGRAM_EXT
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, HCPCS

from .builders import BHCM, PATIENT, PCP, RULES, chart, entry
from .sources import S42

RECORDED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def month_of(resources, month="2026-10"):
    record = group_by_patient(resources)[PATIENT]
    months, _ = close_month(record, Month.parse(month), RULES)
    return months[0]


@pytest.fixture
def addon_month():
    # 20 + 100 minutes in a first month: 99492 + 99494 x2 (CPT midpoint rule: 116–145)
    return month_of(
        [
            *chart(),
            entry("2026-10-05 10:00", 20, mode="in-person"),
            entry("2026-10-12 10:00", 100, mode="video"),
        ]
    )


def test_billing_encounter_us_core_shape(addon_month):
    enc = billing_encounter(addon_month)
    assert enc["identifier"] == [
        {"use": "official", "system": BHI_IDENTIFIER, "value": "billing-cocm-p1-2026-10"}
    ]
    assert enc["status"] == "finished"
    assert enc["class"]["code"] == "AMB"  # one in-person contact
    assert enc["subject"] == {"reference": PATIENT}
    assert enc["period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert enc["length"]["value"] == 120
    types = [(t["coding"][0]["system"], t["coding"][0]["code"]) for t in enc["type"]]
    assert types == [(CPT, "99492"), (CPT, "99494")], S42
    units = [t["extension"][0] for t in enc["type"]]
    assert units == [
        {"url": BILLED_UNITS_EXT, "valuePositiveInt": 1},
        {"url": BILLED_UNITS_EXT, "valuePositiveInt": 2},
    ]
    assert enc["type"][1]["text"] == "99494 x2"
    roles = [
        (p["type"][0]["coding"][0]["code"], p["individual"]["reference"])
        for p in enc["participant"]
    ]
    assert roles == [("PPRF", PCP), ("SPRF", BHCM)]
    assert enc["reasonCode"][0]["coding"][0]["code"] == "F32.1"
    assert enc["serviceType"]["text"] == "Behavioral health"
    assert enc["extension"] == [{"url": PROGRAM_EXT, "valueCode": "cocm"}]


def test_hcpcs_codes_use_the_hcpcs_system():
    enc = billing_encounter(month_of([*chart(), entry("2026-10-05 10:00", 20)]))
    assert enc["type"][0]["coding"][0] == {"system": HCPCS, "code": "G2214"}
    assert enc["class"]["code"] == "VR"  # phone only


def test_encounter_parses_with_r4b_and_fhirclient_strict(addon_month):
    enc = billing_encounter(addon_month)
    R4BEncounter.model_validate(enc)
    StrictEncounter(json.loads(json.dumps(enc)), strict=True)


def test_provenance_points_to_the_ledger_entries(addon_month):
    prov = billing_provenance(addon_month, "Encounter/b1", RECORDED)
    assert prov["target"] == [{"reference": "Encounter/b1"}]
    assert [e["what"]["reference"] for e in prov["entity"]] == list(addon_month.entries)
    assert len(prov["entity"]) == 2
    assert prov["agent"][0]["onBehalfOf"] == {"reference": PCP}
    R4BProvenance.model_validate(prov)
    StrictProvenance(json.loads(json.dumps(prov)), strict=True)


def test_provenance_needs_an_aware_time(addon_month):
    with pytest.raises(ValueError):
        billing_provenance(addon_month, "Encounter/b1", datetime(2026, 11, 26))


def test_transaction_is_deterministic_and_conditional(addon_month):
    first = billing_transaction([addon_month], RECORDED)
    again = billing_transaction([addon_month], RECORDED)
    assert first == again
    enc_entry, prov_entry = first["entry"]
    assert enc_entry["request"] == {
        "method": "POST",
        "url": "Encounter",
        "ifNoneExist": f"identifier={BHI_IDENTIFIER}|billing-cocm-p1-2026-10",
    }
    assert prov_entry["request"]["ifNoneExist"] == f"_tag={BHI_IDENTIFIER}|billing-cocm-p1-2026-10"
    assert prov_entry["resource"]["target"] == [{"reference": enc_entry["fullUrl"]}]
    R4BBundle.model_validate(first)
    StrictBundle(json.loads(json.dumps(first)), strict=True)


def test_not_billable_months_are_left_out():
    below = month_of([*chart(), entry("2026-10-05 10:00", 10)])
    assert not below.billable
    assert billing_transaction([below], RECORDED)["entry"] == []
    with pytest.raises(ValueError):
        billing_encounter(below)
