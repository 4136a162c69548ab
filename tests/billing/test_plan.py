"""Billing rules from the practice plan (`bhi-fhir bill --plan`), and the synthetic clinic."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bhi_fhir.billing.codes import select_codes
from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
from bhi_fhir.billing.rules import rules_from_plan
from bhi_fhir.cli import _register, app
from bhi_fhir.practice_plan import load_practice_plan, parse_practice_plan
from tests.clinic_generator import clinic_generator

from .builders import BHCM, PATIENT, careteam, chart, coverage, entry
from .sources import (
    S6_BHCM,
    S22_EPISODE,
    S41_99484,
    S41_G0323,
    S41_G2214,
    S42,
    S43_CONSENT,
    S43_FQHC,
    S43_TEAM,
    S43_VISIT,
    S72,
    S74,
)

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "practice-plan.toml"
CLINIC = ROOT / "examples" / "clinic"
_register()
runner = CliRunner()


def plan_data(**billing):
    data = tomllib.loads(PLAN.read_text())
    data["billing"].update(billing)
    return data


def test_example_plan_gives_the_practice_rules():
    rules = rules_from_plan(load_practice_plan(PLAN))
    assert rules.program == "cocm" and rules.setting == "office"
    assert rules.timezone == "America/New_York"
    assert rules.billing_practitioner == "Practitioner/pcp-lee"
    assert rules.billing_practitioner_qualification == "physician"
    assert rules.care_managers == ["Practitioner/bhcm-garcia", "Practitioner/bhcm-okafor"]
    assert rules.psychiatric_consultants == ["Practitioner/psych-nguyen"]
    assert rules.consent_scope == "treatment"
    t = rules.thresholds
    assert (t.g2214_from, t.cocm_initial_from, t.cocm_subsequent_from) == (16, 36, 31)
    assert (t.addon_initial_from, t.addon_subsequent_from, t.addon_step) == (86, 76, 30)
    assert t.general_bhi_from == 20
    assert rules.default_payer.max_99494_units == 4, S74
    assert rules.payers["NC Medicaid"].max_99494_units == 4, S74


# (plan [billing] values, program, month kind, minutes, codes, source)
PLAN_ROWS = [
    ({"addon_max_units": 2}, "cocm", "initial", 176, [("99492", 1), ("99494", 2)], S74),
    ({"addon_max_units": 0}, "cocm", "initial", 176, [("99492", 1)], S74),
    ({"setting": "fqhc"}, "cocm", "subsequent", 31, [("99493", 1)], S43_FQHC),
    ({"program": "general-bhi"}, "bhi", None, 19, [], S41_99484),
    ({"program": "general-bhi"}, "bhi", None, 20, [("99484", 1)], S41_99484),
    ({"program": "general-bhi", "billing_practitioner_qualification": "csw"}, "bhi", None, 20,
     [("G0323", 1)], S41_G0323),
]  # fmt: skip


@pytest.mark.parametrize(("billing", "program", "kind", "minutes", "codes", "source"), PLAN_ROWS)
def test_plan_values_reach_code_selection(billing, program, kind, minutes, codes, source):
    rules = rules_from_plan(parse_practice_plan(plan_data(**billing)))
    assert rules.program == program
    got = select_codes(
        rules.program,
        kind or "subsequent",
        minutes,
        setting=rules.setting,
        payer=rules.default_payer,
        clinician=rules.billing_practitioner_qualification,
        year=2026,
        thresholds=rules.thresholds,
    )
    assert [(c.code, c.units) for c in got] == codes, source


def test_payer_cap_from_the_plan_applies_to_that_payer():
    """CPT descriptors/NC Medicaid: one payer caps +99494 at 2 while the practice default stays
    4."""
    data = plan_data()
    data["billing"]["payers"] = {"Acme Health": {"addon_max_units": 2}}
    rules = rules_from_plan(parse_practice_plan(data)).model_copy(
        update={"billing_practitioner": "Practitioner/pcp", "timezone": "America/New_York"}
    )
    resources = [
        *[r for r in chart() if r["resourceType"] != "Coverage"],
        coverage("Acme Health", "Organization/acme"),
        entry("2026-10-05 10:00", 176, clinician="Practitioner/bhcm-garcia"),
    ]
    (month,), _ = close_month(group_by_patient(resources)[PATIENT], Month(2026, 10), rules)
    assert [(c.code, c.units) for c in month.codes] == [("99492", 1), ("99494", 2)], S74
    assert month.payer == "Acme Health"


def test_plan_consultant_on_the_care_team_by_reference():
    """CMS MLN909432 Team: the plan's psychiatric consultant, listed on the CareTeam without a
    role."""
    rules = rules_from_plan(load_practice_plan(PLAN))
    team = careteam(consultant=False, extra=["Practitioner/psych-nguyen"])
    resources = [
        *[r for r in chart() if r["resourceType"] != "CareTeam"],
        team,
        entry("2026-10-05 10:00", 40, clinician="Practitioner/bhcm-garcia"),
    ]
    (month,), _ = close_month(group_by_patient(resources)[PATIENT], Month(2026, 10), rules)
    assert month.requirements["psychiatric_consultant"], S43_TEAM
    assert month.warnings == ()


def test_time_from_someone_not_on_the_plans_team_is_not_counted():
    """CoCM minutes are the plan's care managers' time (CMS MLN909432; NGS Medicare team)."""
    rules = rules_from_plan(load_practice_plan(PLAN))
    resources = [*chart(), entry("2026-10-05 10:00", 40, clinician=BHCM)]
    (month,), rejected = close_month(group_by_patient(resources)[PATIENT], Month(2026, 10), rules)
    assert month.minutes == 0 and month.recorded_minutes == 40, S6_BHCM
    (why,) = rejected
    assert why.code == "not-care-manager:other" and BHCM in why.reason, S43_TEAM


def invoke(*args):
    return runner.invoke(app, ["bill", *args], env={"COLUMNS": "300"})


def test_bill_with_plan_and_rules_is_refused(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[billing]\n")
    result = invoke("--month", "2026-10", "--input", str(CLINIC), "--plan", str(PLAN),
                    "--rules", str(rules))  # fmt: skip
    assert result.exit_code == 2


def test_bad_plan_names_the_key(tmp_path):
    bad = tmp_path / "plan.toml"
    data = PLAN.read_text().replace('setting = "physician-office"', 'setting = "hospital"')
    bad.write_text(data)
    result = invoke("--month", "2026-10", "--input", str(CLINIC), "--plan", str(bad))
    assert result.exit_code == 78  # configuration: a plan that cannot be used
    assert "billing.setting" in result.output


def _clinic_time_patients(month: str) -> set[str]:
    """Patients with a finished care-management Encounter starting in ``month`` (read
    directly from the clinic files, so the test follows the clinic when it is regenerated)."""
    patients = set()
    for line in (CLINIC / "Encounter.ndjson").read_text().splitlines():
        resource = json.loads(line)
        codes = {c.get("code") for t in resource.get("type", []) for c in t.get("coding", [])}
        start = resource.get("period", {}).get("start", "")
        finished = resource.get("status") == "finished"
        if finished and "care-management-contact" in codes and start.startswith(month):
            patients.add(resource["subject"]["reference"])
    return patients


def test_synthetic_clinic_dry_run_with_the_practice_plan():
    """2026-11 is the clinic's current month ("today" is 2026-11-26): a preview. Each patient
    with time gets one row with the plan's billing practitioner and the codes its minutes reach
    (CPT midpoint rule); every enrolled patient has consent, an initiating E/M visit and a CareTeam
    naming the psychiatric consultant (CMS MLN909432), so every row is billable (would be billed:
    dry-run). The workflow's care-management contacts name the patient's care manager, so every
    minute
    recorded is counted (CoCM minutes are care-manager time, CMS MLN909432)."""
    plan_rules = rules_from_plan(load_practice_plan(PLAN))
    result = invoke("--month", "2026-11", "--input", str(CLINIC), "--plan", str(PLAN),
                    "--dry-run", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = report["patients"]
    expected = _clinic_time_patients("2026-11")
    assert expected and {row["patient"] for row in rows} == expected
    assert report["errors"] == [] and report["requests"] is None
    assert report["notes"] and "has not ended" in report["notes"][0]
    assert report["not_counted"] == [], S6_BHCM
    for row in rows:
        assert row["program"] == "cocm"
        assert row["billing_practitioner"] == "Practitioner/pcp-lee"
        assert row["recorded_minutes"] == row["minutes"], S6_BHCM
        codes = select_codes(
            "cocm", row["month_kind"], row["minutes"], year=2026, thresholds=plan_rules.thresholds
        )
        assert row["codes"] == [{"code": c.code, "units": c.units} for c in codes], S42
        assert row["requirements"] == {
            "consent": True, "initiating_visit": True, "psychiatric_consultant": True
        }, S43_TEAM  # fmt: skip
        assert row["billable"] and row["result"] == "dry-run", S43_VISIT
    assert report["summary"] == {"dry-run": len(rows)}
    assert report["not_billable_reasons"] == {}
    table = invoke("--month", "2026-11", "--input", str(CLINIC), "--plan", str(PLAN), "--dry-run")
    assert table.exit_code == 0
    assert f"{len(rows)} patient-months: dry-run {len(rows)}" in table.stdout


def _patient_of_entry(reference: str) -> str:
    ident = reference.split("/")[1]
    for line in (CLINIC / "Encounter.ndjson").read_text().splitlines():
        resource = json.loads(line)
        if resource["id"] == ident:
            return str(resource["subject"]["reference"])
    raise AssertionError(reference)


def test_clinic_month_without_time_is_empty():
    result = invoke("--month", "2026-08", "--input", str(CLINIC), "--plan", str(PLAN),
                    "--dry-run", "--format", "json")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["patients"] == [] and report["summary"] == {}


# The generator's 2026-10 outcome per (scenario, instance) — TIME_PLANS — against the CPT midpoint
# rule table (physician office; first month 16–35 G2214, 36–85 99492, 86–115 +99494; later month
# 16–30 G2214, 31–75 99493, 76–105 +99494, 106–135 +99494×2; under 16 nothing) and CMS MLN909432.
# (scenario, instance): (month kind, counted minutes, codes, not-billable reasons)
OCTOBER = {
    ("week9-25pct", 0): ("subsequent", 45, [("99493", 1)], []),
    ("week9-25pct", 1): ("subsequent", 85, [("99493", 1), ("99494", 1)], []),
    ("week9-25pct", 2): ("subsequent", 22, [("G2214", 1)], []),
    ("week9-50pct", 0): ("subsequent", 62, [("99493", 1)], []),
    ("week9-50pct", 1): ("subsequent", 12, [], ["below-threshold"]),
    ("week10-remission", 0): ("subsequent", 110, [("99493", 1), ("99494", 2)], []),
    ("week10-remission", 1): ("subsequent", 35, [("99493", 1)], []),
    ("week7-no-change", 0): ("initial", 50, [("99492", 1)], []),
    ("week7-no-change", 1): ("initial", 95, [("99492", 1), ("99494", 1)], []),
    ("week3-on-track", 0): ("initial", 25, [("G2214", 1)], []),
    ("week3-on-track", 1): ("initial", 10, [], ["below-threshold"]),
    # Outreach calls after a positive screen, never consented (and not enrolled: no care team).
    ("stale-screens", 0): ("initial", 0, [],
                           ["below-threshold", "no-consent", "no-psychiatric-consultant"]),
    ("stale-screens", 1): ("initial", 0, [],
                           ["below-threshold", "no-consent", "no-psychiatric-consultant"]),
}  # fmt: skip
SOURCE_OF = {"99492": S42, "99493": S42, "99494": S72, "G2214": S41_G2214}


def test_clinic_october_bills_every_threshold_and_says_why_not():
    """`bill --month 2026-10` over the synthetic clinic: the generator's scenarios give a mix
    of codes across the CPT midpoint rule thresholds, and months held back for no consent or < 16
    min."""
    gen = clinic_generator()
    patients = [json.loads(line) for line in (CLINIC / "Patient.ndjson").read_text().splitlines()]
    seen: dict[str, int] = {}
    expected = {}
    for patient in patients:
        scenario = patient["meta"]["tag"][0]["code"]
        instance = seen[scenario] = seen.get(scenario, -1) + 1
        if scenario not in gen.TIME_PLANS:
            continue
        plan = gen.TIME_PLANS[scenario][instance % len(gen.TIME_PLANS[scenario])]
        kind, minutes, codes, reasons = OCTOBER[scenario, instance]
        # The table above is the generator's plan: counted = October minutes after consent.
        assert minutes == sum(plan.get("2026-10", ())), (scenario, instance)
        expected[f"Patient/{patient['id']}"] = (kind, minutes, codes, reasons, plan)

    result = invoke("--month", "2026-10", "--input", str(CLINIC), "--plan", str(PLAN),
                    "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["notes"] == []
    # Calls before consent are recorded, never counted, and each says so (CMS MLN909432 consent).
    assert {item["code"] for item in report["not_counted"]} == {"before-consent"}
    rows = {row["patient"]: row for row in report["patients"]}
    assert set(rows) == set(expected) == _clinic_time_patients("2026-10")
    for patient, (kind, minutes, codes, reasons, plan) in expected.items():
        row = rows[patient]
        assert row["month_kind"] == kind, (patient, S22_EPISODE)
        assert row["minutes"] == minutes, (patient, S43_CONSENT)
        # Calls before consent are recorded, never counted (CMS MLN909432 consent).
        # (the generator's engage calls fall within two weeks of an October screen)
        assert row["recorded_minutes"] == minutes + sum(plan.get("engage", ())), patient
        cut = sum(
            i["minutes"] for i in report["not_counted"] if _patient_of_entry(i["entry"]) == patient
        )
        assert cut == sum(plan.get("engage", ())), (patient, S43_CONSENT)
        got = [(c["code"], c["units"]) for c in row["codes"]]
        assert got == codes, (patient, [SOURCE_OF[c] for c, _ in codes] or S42)
        assert [r["code"] for r in row["reasons"]] == reasons, (patient, S43_CONSENT)
        assert row["billable"] == (not reasons)
        assert row["result"] == ("not-billable" if reasons else "dry-run")
        if not reasons:
            assert row["requirements"] == {
                "consent": True, "initiating_visit": True, "psychiatric_consultant": True
            }, (patient, S43_VISIT, S43_TEAM)  # fmt: skip
            assert row["billing_practitioner"] == "Practitioner/pcp-lee"
    by_code: dict[str, int] = {}
    for row in rows.values():
        key = "+".join(f"{c['code']}x{c['units']}" for c in row["codes"]) or "none"
        by_code[key] = by_code.get(key, 0) + 1
    assert by_code == {
        "99493x1": 3, "99493x1+99494x1": 1, "99493x1+99494x2": 1, "G2214x1": 2,
        "99492x1": 1, "99492x1+99494x1": 1, "none": 4,
    }  # fmt: skip
    assert report["summary"] == {"dry-run": 9, "not-billable": 4}
    assert report["not_billable_reasons"] == {
        "below-threshold": 4, "no-consent": 2, "no-psychiatric-consultant": 2
    }  # fmt: skip
