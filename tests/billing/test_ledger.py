"""The time ledger: counting rules, episodes and per patient-month requirements."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bhi_fhir.billing._time import Month, parse_datetime, subtract, union
from bhi_fhir.billing.codes import BilledCode, PayerRules
from bhi_fhir.billing.entries import ledger_entries
from bhi_fhir.billing.ledger import PatientMonth, close_month, group_by_patient
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule

from .builders import (
    BHCM,
    BHCM2,
    PATIENT,
    PCP,
    PSYCH,
    RULES,
    TZ,
    at,
    careplan,
    chart,
    consent,
    coverage,
    entry,
    inpatient,
    visit,
)
from .sources import (
    CPT_ONE_PERSON,
    LEDGER_RULES,
    S22_EPISODE,
    S41,
    S41_APCM,
    S41_G0323,
    S42,
    S42_EXCLUDE,
    S43_CONSENT,
    S43_MONTH,
    S43_SAME_MONTH,
    S43_TEAM,
    S43_VISIT,
    S74,
)


def bill(resources, month="2026-10", rules=RULES) -> dict[str, PatientMonth]:
    record = group_by_patient(resources)[PATIENT]
    months, _ = close_month(record, Month.parse(month), rules)
    return {m.program: m for m in months}


def cocm(resources, month="2026-10", rules=RULES) -> PatientMonth:
    return bill(resources, month, rules)["cocm"]


def reasons(pm: PatientMonth) -> set[str]:
    return {r.code for r in pm.reasons}


# ------------------------------------------------------------------ counting


@pytest.mark.parametrize(
    ("entries", "minutes", "source"),
    [
        # same clinician, overlapping: union (10:00-10:45)
        ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:15", 30, BHCM)], 45, LEDGER_RULES),
        # same clinician, one inside the other
        ([("2026-10-05 10:00", 60, BHCM), ("2026-10-05 10:10", 20, BHCM)], 60, LEDGER_RULES),
        # same clinician, touching: no double count, no gap
        ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:30", 30, BHCM)], 60, LEDGER_RULES),
        # duplicate entry (recorded twice)
        ([("2026-10-05 10:00", 36, BHCM), ("2026-10-05 10:00", 36, BHCM)], 36, LEDGER_RULES),
        # different clinicians at the same time: one person's time (test_whose_minutes.py)
        ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:00", 30, BHCM2)], 30, CPT_ONE_PERSON),
        # separate days add up
        ([("2026-10-05 10:00", 20, BHCM), ("2026-10-19 10:00", 20, BHCM)], 40, S43_MONTH),
    ],
)
def test_overlap_counts_once(entries, minutes, source):
    resources = chart() + [entry(s, m, clinician=c) for s, m, c in entries]
    assert cocm(resources).minutes == minutes, source


def test_calendar_month_split_at_midnight_in_practice_time_zone():
    resources = [*chart(), entry("2026-10-31 23:50", 30)]
    assert cocm(resources, "2026-10").minutes == 10, S43_MONTH
    assert cocm(resources, "2026-11").minutes == 20, S43_MONTH


def test_minutes_round_down_at_least_rule():
    resources = [*chart(), entry("2026-10-05 10:00", 35.9)]
    pm = cocm(resources)
    assert pm.minutes == 35
    assert pm.codes == (BilledCode("G2214"),), S42


def test_length_without_period_end():
    e = entry("2026-10-05 10:00", 40)
    e["period"] = {"start": e["period"]["start"]}
    assert cocm([*chart(), e]).minutes == 40, LEDGER_RULES


def test_date_only_period_takes_its_minutes_from_length():
    # A contact documented as "2026-10-05, 40 min" is 40 minutes, not the whole day.
    e = entry("2026-10-05 10:00", 40)
    e["period"] = {"start": "2026-10-05", "end": "2026-10-05"}
    assert cocm([*chart(), e]).minutes == 40, LEDGER_RULES


def test_date_only_period_without_length_is_not_counted():
    e = entry("2026-10-05 10:00", 40)
    e["period"] = {"start": "2026-10-05", "end": "2026-10-05"}
    e.pop("length", None)
    record = group_by_patient([*chart(), e])[PATIENT]
    months, rejected = close_month(record, Month.parse("2026-10"), RULES)
    assert sum(m.minutes for m in months) == 0, LEDGER_RULES
    assert [r.reason for r in rejected] == ["no period.start with period.end or length"]


# ------------------------------------------------------------------ consent and discharge


@pytest.mark.parametrize(
    ("consent_on", "minutes", "billable", "why", "source"),
    [
        ("2026-01-05", 50, True, set(), S43_CONSENT),
        # consent mid-month: only the 20 minutes after it count
        ("2026-10-15", 20, True, set(), S43_CONSENT),
        # consent at 10:15 during a 10:00-10:20 contact: its last 5 minutes count
        ("2026-10-19T10:15:00-04:00", 5, False, {"below-threshold"}, S43_CONSENT),
        # consent after the month: nothing counts, and the month is not billable
        ("2026-11-02", 0, False, {"below-threshold", "no-consent"}, S43_CONSENT),
        (None, 0, False, {"below-threshold", "no-consent"}, S43_CONSENT),
    ],
)
def test_minutes_before_consent_do_not_count(consent_on, minutes, billable, why, source):
    resources = [
        *chart(consent_on=consent_on),
        entry("2026-10-05 10:00", 30),
        entry("2026-10-19 10:00", 20),
    ]
    pm = cocm(resources)
    assert pm.recorded_minutes == 50
    assert (pm.minutes, pm.billable, reasons(pm)) == (minutes, billable, why), source
    assert pm.requirements["consent"] is (consent_on is not None and consent_on < "2026-11"), source


def test_consent_must_be_treatment_scope_and_active():
    other = consent("2026-01-05")
    other["scope"]["coding"][0]["code"] = "research"
    rejected = consent("2026-01-05", status="rejected")
    resources = [*chart(consent_on=None), other, rejected, entry("2026-10-05 10:00", 40)]
    assert "no-consent" in reasons(cocm(resources)), S43_CONSENT


def test_minutes_after_discharge_do_not_count():
    resources = [r for r in chart() if r["resourceType"] != "CarePlan"] + [
        careplan("2026-01-05", "2026-10-10"),
        entry("2026-10-05 10:00", 20),
        entry("2026-10-20 10:00", 30),
    ]
    pm = cocm(resources)
    assert (pm.recorded_minutes, pm.minutes) == (50, 20), LEDGER_RULES
    assert pm.entries == (resources[-2]["id"] and f"Encounter/{resources[-2]['id']}",)


def test_another_services_mental_health_plan_ending_holds_no_minutes_back():
    # Only the practice's own BHI CarePlan (its identifier, or the plan's [enrollment] rule)
    # is the episode; a psychiatry service's completed plan of the same category is not.
    resources = [*chart(), careplan("2026-01-05", "2026-10-10", identifier_system=None),
                 entry("2026-10-20 10:00", 30)]
    assert cocm(resources).minutes == 30, LEDGER_RULES


def test_an_ehr_bhi_plan_named_by_the_practice_rule_ends_the_episode():
    ehr_system = "urn:example:ehr-bhi-careplans"
    rules = RULES.model_copy(update={"enrollment": EnrollmentRule(
        identifier_systems=OWN_ENROLLMENT.identifier_systems | {ehr_system})})
    resources = [r for r in chart() if r["resourceType"] != "CarePlan"] + [
        careplan("2026-01-05", "2026-10-10", identifier_system=ehr_system),
        entry("2026-10-05 10:00", 20),
        entry("2026-10-20 10:00", 30),
    ]
    record = group_by_patient(resources)[PATIENT]
    months, _ = close_month(record, Month(2026, 10), rules)
    assert sum(m.minutes for m in months) == 20, LEDGER_RULES
    # without the rule, that plan is another service's: nothing held back
    assert cocm(resources).minutes == 50, LEDGER_RULES


def test_re_enrolment_after_discharge_counts_again():
    resources = [r for r in chart() if r["resourceType"] != "CarePlan"] + [
        careplan("2026-01-05", "2026-10-10"),
        careplan("2026-10-15"),
        entry("2026-10-12 10:00", 30),  # between plans: not counted
        entry("2026-10-20 10:00", 40),
    ]
    assert cocm(resources).minutes == 40, LEDGER_RULES


# ------------------------------------------------------------------ exclusions


def test_separately_billed_service_of_same_clinician_is_excluded():
    therapy = visit("2026-10-05 10:00", "90834", minutes=45, clinician=BHCM)
    resources = [*chart(), therapy, entry("2026-10-05 10:00", 60), entry("2026-10-06 10:00", 30)]
    assert cocm(resources).minutes == 45, S42_EXCLUDE  # 15 + 30


def test_separately_billed_service_of_another_clinician_is_not_excluded():
    em = visit("2026-10-05 10:00", "99213", minutes=30, clinician=PCP)
    resources = [*chart(), em, entry("2026-10-05 10:00", 40, clinician=BHCM)]
    assert cocm(resources).minutes == 40, S42_EXCLUDE


def test_entry_carrying_its_own_billed_code_is_rejected():
    e = entry("2026-10-05 10:00", 45)
    e["type"].append({"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "90832"}]})
    record = group_by_patient([*chart(), e])[PATIENT]
    months, rejected = close_month(record, Month(2026, 10), RULES)
    assert months == []
    assert "separately billed" in rejected[0].reason, S42_EXCLUDE


def test_time_while_inpatient_is_excluded():
    resources = [
        *chart(),
        inpatient("2026-10-10 08:00", "2026-10-12 12:00"),
        entry("2026-10-05 10:00", 20),
        entry("2026-10-11 10:00", 30),
    ]
    assert cocm(resources).minutes == 20, S42_EXCLUDE


def test_our_monthly_billing_encounter_is_not_an_exclusion():
    prior_bill = visit("2026-10-01 00:00", "99493", minutes=60 * 24 * 30, clinician=BHCM)
    resources = [*chart(), prior_bill, entry("2026-10-05 10:00", 40)]
    assert cocm(resources).minutes == 40, S42_EXCLUDE


def test_unfinished_and_broken_entries_are_rejected_with_reasons():
    cancelled = entry("2026-10-05 10:00", 40, status="cancelled")
    no_start = entry("2026-10-06 10:00", 40)
    no_start["period"] = {}
    del no_start["length"]
    entries, rejected = ledger_entries([cancelled, no_start], TZ)
    assert entries == []
    assert [r.reason for r in rejected] == [
        "status 'cancelled' is not a finished contact",
        "no period.start with period.end or length",
    ]


# ------------------------------------------------------------------ episodes


@pytest.mark.parametrize(
    ("earlier", "kind", "code", "source"),
    [
        ([], "initial", "99492", S22_EPISODE),
        (["2026-09-10 10:00"], "subsequent", "99493", S22_EPISODE),
        # last service in April: May..Sep is 5 months without service → same episode
        (["2026-04-10 10:00"], "subsequent", "99493", S22_EPISODE),
        # last service in March: Apr..Sep is 6 months without service → new episode
        (["2026-03-10 10:00"], "initial", "99492", S22_EPISODE),
        # a chain of months with short gaps stays one episode
        (["2026-01-10 10:00", "2026-05-10 10:00"], "subsequent", "99493", S22_EPISODE),
    ],
)
def test_initial_vs_subsequent_month(earlier, kind, code, source):
    resources = chart() + [entry(s, 20) for s in earlier] + [entry("2026-10-05 10:00", 40)]
    pm = cocm(resources)
    assert (pm.month_kind, pm.codes[0].code) == (kind, code), source


def test_prior_month_billed_with_cocm_code_is_service_even_without_entries():
    prior_bill = visit("2026-08-01 00:00", "99493", minutes=60, clinician=PCP)
    resources = [*chart(), prior_bill, entry("2026-10-05 10:00", 40)]
    assert cocm(resources).month_kind == "subsequent", S22_EPISODE


def test_uncounted_time_is_not_service_for_the_episode():
    # September time before consent does not start the episode: October is initial.
    resources = [
        *chart(consent_on="2026-10-01"),
        entry("2026-09-10 10:00", 40),
        entry("2026-10-05 10:00", 40),
    ]
    assert cocm(resources).month_kind == "initial", S22_EPISODE


# ------------------------------------------------------------------ requirements


def test_billable_month_reports_every_requirement_met():
    pm = cocm([*chart(), entry("2026-10-05 10:00", 40)])
    assert pm.billable
    assert pm.requirements == {
        "consent": True,
        "initiating_visit": True,
        "psychiatric_consultant": True,
    }
    assert (pm.mrn, pm.payer, pm.billing_practitioner) == ("MRN-0001", "Medicare", PCP)
    assert pm.care_managers == (BHCM,)
    assert [d.code for d in pm.diagnoses] == ["F32.1"]


def test_no_psychiatric_consultant_on_care_team():
    pm = cocm([*chart(consultant=False), entry("2026-10-05 10:00", 40)])
    assert reasons(pm) == {"no-psychiatric-consultant"}, S43_TEAM
    assert not pm.billable


def test_consultant_recognised_by_practice_plan_reference():
    rules = RULES.model_copy(
        update={"psychiatric_consultants": [PSYCH], "psychiatric_consultant_roles": []}
    )
    pm = cocm([*chart(), entry("2026-10-05 10:00", 40)], rules=rules)
    assert pm.billable, S43_TEAM


def test_general_bhi_does_not_need_a_psychiatric_consultant():
    resources = [*chart(consultant=False), entry("2026-10-05 10:00", 25, program="bhi")]
    pm = bill(resources)["bhi"]
    assert pm.billable and pm.codes == (BilledCode("99484"),), S41
    assert "psychiatric_consultant" not in pm.requirements


@pytest.mark.parametrize(
    ("visit_on", "ok", "source"),
    [
        ("2026-01-02 09:00", True, S43_VISIT),  # before the episode, within a year
        ("2025-10-06 09:00", True, S43_VISIT),  # 364 days before the episode began (Oct 1)
        ("2025-09-30 09:00", False, S43_VISIT),  # more than a year before
        ("2026-10-20 09:00", True, S43_VISIT),  # in the billed month
        ("2026-11-03 09:00", False, S43_VISIT),  # after the month
        (None, False, S43_VISIT),
    ],
)
def test_initiating_visit_window(visit_on, ok, source):
    resources = [r for r in chart() if r.get("id", "").startswith("v") is False]
    if visit_on is not None:
        resources.append(visit(visit_on))
    resources.append(entry("2026-10-05 10:00", 40))
    pm = cocm(resources)
    assert pm.requirements["initiating_visit"] is ok, source
    assert ("no-initiating-visit" in reasons(pm)) is not ok, source


def test_initiating_visit_window_runs_from_the_episode_start():
    # Episode began in March 2026; a visit in May 2025 is within a year of that start.
    resources = [r for r in chart() if not r.get("id", "").startswith("v")]
    resources += [visit("2025-05-01 09:00")]
    resources += [entry(f"2026-{m:02d}-10 10:00", 40) for m in range(3, 11)]
    pm = cocm(resources)
    assert pm.episode_start == Month(2026, 3)
    assert pm.requirements["initiating_visit"], S43_VISIT


@pytest.mark.parametrize(("minutes", "code"), [(15, "G2214"), (19, "99484/G0323")])
def test_below_threshold_reason_names_the_minimum(minutes, code):
    program = "cocm" if code == "G2214" else "bhi"
    pm = bill([*chart(), entry("2026-10-05 10:00", minutes, program=program)])[program]
    assert reasons(pm) == {"below-threshold"}
    assert code in pm.reasons[0].text, S41


def test_no_billing_practitioner():
    rules = RULES.model_copy(update={"billing_practitioner": None})
    pm = cocm([*chart(), entry("2026-10-05 10:00", 40)], rules=rules)
    assert "no-billing-practitioner" in reasons(pm), S43_TEAM


# ------------------------------------------------------------------ same month, G0323, payers, APCM


def test_no_general_bhi_with_cocm_codes_same_month():
    resources = [
        *chart(),
        entry("2026-10-05 10:00", 40),
        entry("2026-10-06 10:00", 25, program="bhi"),
    ]
    months = bill(resources)
    assert months["cocm"].billable
    assert reasons(months["bhi"]) == {"cocm-same-month"}, S43_SAME_MONTH


def test_general_bhi_billed_when_cocm_bills_nothing():
    resources = [
        *chart(),
        entry("2026-10-05 10:00", 10),
        entry("2026-10-06 10:00", 25, program="bhi"),
    ]
    months = bill(resources)
    assert not months["cocm"].codes
    assert months["bhi"].billable, S43_SAME_MONTH


def test_g0323_when_the_billing_clinician_is_a_psychologist():
    rules = RULES.model_copy(
        update={"program": "bhi", "billing_practitioners": {"Practitioner/psy": "psychologist"}}
    )
    # G0323 counts the psychologist's own time (CMS MLN909432).
    resources = [*chart(), entry("2026-10-05 10:00", 20, clinician="Practitioner/psy")]
    resources[2]["participant"].append({"member": {"reference": "Practitioner/psy"}})
    pm = bill(resources, rules=rules)["bhi"]
    assert pm.billing_practitioner == "Practitioner/psy"
    assert pm.codes == (BilledCode("G0323"),), S41_G0323


def test_payer_cap_from_coverage():
    rules = RULES.model_copy(
        update={
            "payers": {"Organization/ncmedicaid": PayerRules(name="NC Medicaid", max_99494_units=2)}
        }
    )
    resources = [r for r in chart() if r["resourceType"] != "Coverage"]
    resources += [
        coverage("NC Medicaid", "Organization/ncmedicaid"),
        entry("2026-10-05 10:00", 200),
    ]
    pm = cocm(resources, rules=rules)
    assert pm.payer == "NC Medicaid"
    assert pm.codes == (BilledCode("99492"), BilledCode("99494", 2)), S74


def test_apcm_add_on_with_base_by_same_practitioner():
    base = visit("2026-10-01 09:00", "G0556", minutes=1, clinician=PCP)
    pm = cocm([*chart(), base, entry("2026-10-05 10:00", 40)])
    assert pm.codes == (BilledCode("G0568"),), S41_APCM


def test_apcm_base_by_another_practitioner_does_not_unlock_the_add_on():
    base = visit("2026-10-01 09:00", "G0556", minutes=1, clinician="Practitioner/other")
    pm = cocm([*chart(), base, entry("2026-10-05 10:00", 40)])
    assert pm.codes == (BilledCode("99492"),), S41_APCM
    assert any("APCM" in w for w in pm.warnings)


def test_apcm_base_in_another_month_does_not_count():
    base = visit("2026-09-01 09:00", "G0556", minutes=1, clinician=PCP)
    pm = cocm([*chart(), base, entry("2026-10-05 10:00", 40)])
    assert pm.codes == (BilledCode("99492"),), S41_APCM


def test_rhc_fqhc_2026_month():
    rules = RULES.model_copy(update={"setting": "fqhc"})
    pm = cocm([*chart(), entry("2026-10-05 10:00", 40)], rules=rules)
    assert pm.codes == (BilledCode("99492"),)


# ------------------------------------------------------------------ the rest


def test_encounter_class_virtual_only_when_every_contact_is():
    assert cocm([*chart(), entry("2026-10-05 10:00", 40, mode="video")]).encounter_class == "VR"
    mixed = [
        entry("2026-10-05 10:00", 20, mode="video"),
        entry("2026-10-06 10:00", 20, mode="in-person"),
    ]
    assert cocm(chart() + mixed).encounter_class == "AMB"


def test_no_time_no_month():
    record = group_by_patient(chart())[PATIENT]
    assert close_month(record, Month(2026, 10), RULES) == ([], [])


def test_identifier_is_deterministic():
    pm = cocm([*chart(), entry("2026-10-05 10:00", 40)])
    assert pm.identifier_value == "billing-cocm-p1-2026-10"


def test_interval_helpers():
    a = (at("2026-10-05 10:00"), at("2026-10-05 11:00"))
    b = (at("2026-10-05 10:30"), at("2026-10-05 12:00"))
    assert union([b, a]) == [(a[0], b[1])]
    assert subtract([a], [(at("2026-10-05 10:15"), at("2026-10-05 10:45"))]) == [
        (a[0], at("2026-10-05 10:15")),
        (at("2026-10-05 10:45"), a[1]),
    ]


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2026-10-05", False, datetime(2026, 10, 5, tzinfo=TZ)),
        ("2026-10-05", True, datetime(2026, 10, 6, tzinfo=TZ)),
        ("2026-10", True, datetime(2026, 11, 1, tzinfo=TZ)),
        ("2026-10-05T10:00:00Z", False, datetime(2026, 10, 5, 10, tzinfo=ZoneInfo("UTC"))),
        ("garbage", False, None),
        (None, False, None),
    ],
)
def test_parse_datetime(value, end, expected):
    assert parse_datetime(value, TZ, end=end) == expected


def test_month_parse_and_shift():
    assert str(Month.parse("2026-10").shift(3)) == "2027-01"
    with pytest.raises(ValueError):
        Month.parse("2026-13")
    with pytest.raises(ValueError):
        Month.parse("October")


def test_rules_default_from_sources():
    rules = BillingRules()
    assert rules.episode_gap_months == 6, S22_EPISODE
    assert rules.initiating_visit_lookback_days == 365, S43_VISIT
