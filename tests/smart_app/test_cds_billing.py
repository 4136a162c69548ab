"""The CDS Hooks billing card (smart_app/cds_cards.py): a month close to a billing threshold.

The thresholds are the practice plan's billing defaults, each from a public source (cited per
row); the margin is the plan's ``billing.near_threshold_minutes`` (practice choice, default 10).
Every row is on one side of a threshold or of the margin, with its neighbour on the other.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.billing import time_entry
from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import PracticePlan, load_practice_plan
from smart_app.cds_cards import BILLING_SUMMARY, billing_card
from tests.smart_app import test_cds
from tests.smart_app.test_cds import call, cards_of, hook_request, patient, prefetch_of

ehr, client = test_cds.ehr, test_cds.client  # the EHR (JWKS) and app fixtures

TODAY = date(2026, 11, 26)
CARE_MANAGER = "Practitioner/bhcm-garcia"  # a care manager of examples/practice-plan.toml
BILLING_PRACTITIONER = "Practitioner/pcp-lee"  # its billing practitioner
APP = "http://testserver/launch"


def plan_with(**billing: Any) -> PracticePlan:
    plan = load_practice_plan(examples_dir() / "practice-plan.toml")
    return plan.model_copy(update={"billing": plan.billing.model_copy(update=billing)})


def consent() -> dict[str, Any]:
    """A BHI consent (scope treatment, the plan's consent.scope) long before the month."""
    return {"resourceType": "Consent", "id": "c1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "treatment"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"}, "dateTime": "2026-01-05"}


def minutes_on(day: str, minutes: int, n: int = 0, by: str = CARE_MANAGER) -> dict[str, Any]:
    """A time entry (the billing core's own representation) at 15:00 UTC, by a care manager."""
    start = datetime.fromisoformat(f"{day}T15:00:00").replace(tzinfo=UTC)
    return time_entry(id=f"t{day}{n}", patient="Patient/p1", clinician=by, start=start,
                      end=start + timedelta(minutes=minutes), mode="phone",
                      identifier_system=BHI_IDENTIFIER, identifier_value=f"time:{day}:{n}")


def record(minutes: int, *, later_month: bool = False) -> list[dict[str, Any]]:
    """The patient with ``minutes`` this month (Nov 2026); a later CoCM month has service in
    October too (the episode began then)."""
    resources = [patient(), consent(), minutes_on("2026-11-20", minutes)]
    if later_month:
        resources.append(minutes_on("2026-10-15", 40, 1))
    return resources


def summary(short: int, code: str) -> str:
    return BILLING_SUMMARY.format(short=short, code=code)


# Thresholds: CPT midpoint rule as tabled by the Regence/BCBSND CoCM policies
# (https://regence.com/provider/library/policies-guidelines/reimbursement-policy/collaborative-care-codes):
# 99492 from 36 (first month), 99493 from 31 (later months), +99494 at 86 / 76; G2214 from 16
# (https://support.mirah.com/article/663-collaborative-care-minute-targets); 99484 "at least
# 20 minutes" (CPT 99484 descriptor; CMS MLN909432). Margin: 10 minutes (plan default).
@pytest.mark.parametrize(
    ("minutes", "later", "billing", "expected"),
    [
        (6, False, {}, summary(10, "G2214")),  # Mirah: G2214 from 16; 10 short = margin
        (5, False, {}, None),  # 11 short: outside the margin
        (16, False, {}, None),  # G2214 reached (Mirah); 99492 is 20 away (Regence)
        (26, False, {}, summary(10, "99492")),  # Regence: 99492 from 36
        (25, False, {}, None),
        (35, False, {}, summary(1, "99492")),  # Regence: one minute below 99492
        (36, False, {}, None),  # 99492 reached; +99494 at 86 is 50 away (Regence)
        (76, False, {}, summary(10, "99494")),  # Regence: first +99494 at 86 (initial)
        (75, False, {}, None),
        (21, True, {}, summary(10, "99493")),  # Regence: 99493 from 31 (later month)
        (20, True, {}, None),
        (66, True, {}, summary(10, "99494")),  # Regence: first +99494 at 76 (later month)
        (65, True, {}, None),
        (96, True, {}, summary(10, "99494 (unit 2)")),  # Regence: second unit at 106
        # addon_max_units 1 (payer caps vary, NC Medicaid 4): no second unit to reach.
        (96, True, {"addon_max_units": 1}, None),
        (10, False, {"program": "general-bhi"}, summary(10, "99484")),  # CPT 99484: 20 min
        (9, False, {"program": "general-bhi"}, None),
        (20, False, {"program": "general-bhi"}, None),  # 99484 reached; nothing further
        (6, False, {"near_threshold_minutes": 9}, None),  # the margin is the plan's
        (7, False, {"near_threshold_minutes": 9}, summary(9, "G2214")),
        (15, False, {"near_threshold_minutes": 0}, None),  # 0: no billing card
    ],
    ids=["g2214-10-short", "g2214-11-short", "g2214-reached", "99492-10-short",
         "99492-11-short", "99492-1-short", "99492-reached", "99494-initial-10-short",
         "99494-initial-11-short", "99493-10-short", "99493-11-short", "99494-later-10-short",
         "99494-later-11-short", "99494-unit-2", "99494-capped", "99484-10-short",
         "99484-11-short", "99484-reached", "margin-9-10-short",
         "margin-9-9-short", "margin-0"],
)
def test_billing_card_within_the_margin(minutes: int, later: bool, billing: dict[str, Any],
                                        expected: str | None) -> None:
    card = billing_card(record(minutes, later_month=later), TODAY, plan_with(**billing),
                        app_url=APP)
    assert (card and card["summary"]) == expected
    if card is not None:
        assert card["indicator"] == "info"
        assert card["source"]["url"].startswith("https://")
        evidence = card["detail"].split("\n\n")[0]
        assert evidence.startswith(f"**Evidence:** {minutes} counted care-management minutes")
        assert card["links"] == [{"label": "Open bhi-fhir for this patient", "url": APP,
                                  "type": "smart"}]


# HCPCS G0323 (https://www.hipaaspace.com/medical_billing/coding/healthcare.common.procedure.coding.system/g0323.xml):
# general BHI by a clinical psychologist/CSW/MHC/MFT, at least 20 minutes of their own time.
@pytest.mark.parametrize(
    ("by", "expected"),
    [(BILLING_PRACTITIONER, summary(1, "G0323")), (CARE_MANAGER, None)],
    ids=["csw-own-time-1-short", "care-manager-time-not-counted"],
)
def test_g0323_counts_the_billing_clinicians_own_time(by: str, expected: str | None) -> None:
    plan = plan_with(program="general-bhi", billing_practitioner_qualification="csw")
    resources = [patient(), consent(), minutes_on("2026-11-20", 19, by=by)]
    card = billing_card(resources, TODAY, plan, app_url=APP)
    assert (card and card["summary"]) == expected


def test_counted_minutes_not_recorded_ones() -> None:
    """Time before the consent is not counted (CMS MLN909432): 30 recorded, none counted."""
    resources = [patient(), minutes_on("2026-11-20", 30)]
    assert billing_card(resources, TODAY, plan_with(), app_url=APP) is None


def test_no_time_this_month_no_card() -> None:
    assert billing_card([patient(), consent()], TODAY, plan_with(), app_url=APP) is None


def test_hook_returns_the_billing_card(client: TestClient) -> None:
    cards = cards_of(client, record(26)[1:])
    assert [c["summary"] for c in cards if c["indicator"] == "info"] == [summary(10, "99492")]
    again = cards_of(client, record(26)[1:])
    assert [c["uuid"] for c in again] == [c["uuid"] for c in cards]  # stable across calls


def test_hook_logs_no_minutes_of_the_patient(client: TestClient,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    body = hook_request(prefetch_of(record(26)[1:]))
    assert call(client, body).status_code == 200
    assert "p1" not in caplog.text and "26 counted" not in caplog.text


@pytest.mark.parametrize(("value", "ok"), [(0, True), (-1, False)], ids=["zero-off", "negative"])
def test_the_margin_setting_is_checked_at_load(value: int, ok: bool) -> None:
    """``billing.near_threshold_minutes`` is validated with the plan (0 turns the card off)."""
    import tomllib

    from bhi_fhir.practice_plan import PracticePlanError, parse_practice_plan

    data = tomllib.loads((examples_dir() / "practice-plan.toml").read_text())
    data["billing"]["near_threshold_minutes"] = value
    if ok:
        assert parse_practice_plan(data).billing.near_threshold_minutes == value
    else:
        with pytest.raises(PracticePlanError, match="near_threshold_minutes"):
            parse_practice_plan(data)
