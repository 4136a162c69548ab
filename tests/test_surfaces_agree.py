"""Every surface asks one rule: ``score``, ``apply``, sync planning and the app's patient view
agree, case by case, on positive / negative / unknown, on the crisis writes and on "no work for
the deceased".

Per case, one Patient and one screen (a QuestionnaireResponse, or a Synthea-style report and
total, read through ``bhi_fhir.instruments.screens``) go through:

* ``bhi-fhir score --plan … --format json`` (the screen's ``positive`` and its flags);
* ``bhi-fhir apply --plan … --format json --out bundle.json`` over a temporary folder (the
  rules that fired, and the resource types of the transaction Bundle);
* ``plan_patient`` (sync planning, no server: the workflow writes, and the ``POS``/``NEG``
  interpretation of the screening Observations it would write);
* ``patient_view`` / ``registry_row`` (the app: the screen's ``positive`` fact, the crises it
  lists, the registry's status and flags).

A case with ``plan`` runs every surface with a practice plan whose [screening] values differ
(one threshold serves them all). Expected values come from the sources cited in each row's id
(the public source named there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.instruments.cssrs import Q1 as CSSRS_Q1
from bhi_fhir.instruments.cssrs import Q2 as CSSRS_Q2
from bhi_fhir.instruments.cssrs import Q3 as CSSRS_Q3
from bhi_fhir.instruments.cssrs import Q4 as CSSRS_Q4
from bhi_fhir.instruments.cssrs import Q5 as CSSRS_Q5
from bhi_fhir.instruments.cssrs import Q6 as CSSRS_Q6
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sync import DEFAULT_AGENT, PatientContext, plan_patient
from bhi_fhir.sync.runner import load_protocol_files
from smart_app.views_model import patient_view, registry_row
from tests.instruments.build import PHQ9, audit, frequency, response, yes_no

TODAY = date(2026, 11, 26)
PLAN = examples_dir() / "practice-plan.toml"
PATIENT_ID = "p-1"
LOINC = "http://loinc.org"
SURVEY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
CSSRS_RISK = "93374-7"  # C-SSRS suicide risk level (Columbia C-SSRS triage guidelines)
CRISIS = "crisis-assessment"
# The rule a positive screen of each instrument starts (bhi-protocol.json): a depression or
# anxiety screen → engage (AIMS Center phase 1); a positive AUDIT-C → brief intervention (US Core
# AUDIT-C).
WORK_RULE = {"phq9": "engage", "auditc": "brief-intervention", "cssrs": None}


@dataclass(frozen=True)
class Case:
    instrument: str
    items: list[dict[str, Any]]  # the response's items; [] for a screen stored as Observations
    positive: bool | None  # what every surface must say of the screen
    crisis: bool  # the screen asks for a same-day safety assessment
    status: str = "completed"
    gender: str | None = "female"
    deceased: str | None = None  # Patient.deceasedDateTime
    authored: str = TODAY.isoformat()
    plan: dict[str, int] | None = None  # [screening] values the practice changed
    total_only: int | None = None  # a Synthea-style report + total instead of a response


def phq9(points: list[int | None]) -> list[dict[str, Any]]:
    """PHQ-9 items by points, None leaving the item unanswered (LOINC LL358-3 LA codes)."""
    keys = [k for k, p in zip(PHQ9, points, strict=True) if p is not None]
    return frequency(keys, [p for p in points if p is not None])


CSSRS_HIGH = yes_no({CSSRS_Q1: True, CSSRS_Q2: True, CSSRS_Q3: True, CSSRS_Q4: True,
                     CSSRS_Q5: False, CSSRS_Q6: False})

CASES = [
    pytest.param(Case("phq9", phq9([2, 2, 1, 1, 1, 1, 1, 1, 0]), True, False),
                 id="phq9-complete-10-positive (>=10, Kroenke 2001)"),
    pytest.param(Case("phq9", phq9([2, 2, 1, 1, 1, 1, 1, 0, 0]), False, False),
                 id="phq9-complete-9-negative (>=10, Kroenke 2001)"),
    pytest.param(Case("phq9", phq9([3, 3, 2, 2, None, None, None, None, 0]), True, False),
                 id="phq9-incomplete-answered-10-positive-by-bound (missing items at 0)"),
    pytest.param(Case("phq9", phq9([1, 1, 1, 1, 1, None, None, None, 0]), None, False),
                 id="phq9-incomplete-5-of-up-to-14-undecided (missing items 0-3)"),
    pytest.param(Case("phq9", phq9([1, 1, 1, 1, 1, 1, None, 0, 0]), False, False),
                 id="phq9-incomplete-6-of-up-to-9-negative-by-bound (missing items at 3)"),
    pytest.param(Case("phq9", phq9([1, 1, 0, 0, 0, 0, 0, 0, 1]), False, True),
                 id="phq9-item9=1-total-3-crisis-not-positive (Kroenke 2001 crisis flag)"),
    pytest.param(Case("phq9", phq9([2, 2, 2, 2, 1, 1, 1, 1, 2]), None, True,
                      status="in-progress"),
                 id="phq9-in-progress-item9=2-crisis-kept-not-a-screen "
                    "(Kroenke 2001; FHIR R4 QuestionnaireResponse.status)"),
    pytest.param(Case("phq9", phq9([3, 3, 2, 2, 2, 1, 1, 1, 2]), None, False,
                      status="entered-in-error"),
                 id="phq9-entered-in-error-counts-for-nothing "
                    "(FHIR R4 QuestionnaireResponse.status)"),
    pytest.param(Case("auditc", audit(0, None, None), False, False),
                 id="auditc-never-skips-q2-q3-total-0 (Babor 2001)"),
    pytest.param(Case("auditc", audit(2, 1, 0), True, False, gender="female"),
                 id="auditc-female-3-positive (US Core Questionnaire-AUDIT-C: >=3 women)"),
    pytest.param(Case("auditc", audit(2, 0, 0), False, False, gender="female"),
                 id="auditc-female-2-negative (US Core Questionnaire-AUDIT-C: >=3 women)"),
    pytest.param(Case("auditc", audit(2, 1, 0), False, False, gender="male"),
                 id="auditc-male-3-negative (US Core Questionnaire-AUDIT-C: >=4 men)"),
    pytest.param(Case("auditc", audit(2, 1, 1), True, False, gender="male"),
                 id="auditc-male-4-positive (US Core Questionnaire-AUDIT-C: >=4 men)"),
    pytest.param(Case("auditc", audit(2, 1, 1), False, False, gender="male",
                      plan={"auditc_positive_male": 5}),
                 id="auditc-male-4-below-a-plan-cut-of-5 (practice choice, practice-plan.toml)"),
    pytest.param(Case("auditc", audit(2, 1, 0), False, False, gender="female",
                      plan={"auditc_positive_female": 4}),
                 id="auditc-female-3-below-a-plan-cut-of-4 (practice choice, "
                    "practice-plan.toml)"),
    pytest.param(Case("cssrs", CSSRS_HIGH, True, True),
                 id="cssrs-high-crisis (Columbia C-SSRS triage guidelines high: Q4 yes; SAFE-T)"),
    pytest.param(Case("phq9", phq9([3, 3, 2, 2, 2, 1, 1, 1, 0]), True, False,
                      deceased="2026-11-20", authored="2026-11-10"),
                 id="deceased-positive-screen-no-work "
                    "(Medicare pays no services after death; FHIR R4 Patient.deceased[x])"),
    pytest.param(Case("phq9", phq9([2, 2, 1, 1, 1, 1, 1, 1, 2]), True, True, gender=None),
                 id="no-gender-crisis-screen-still-acted-on (Kroenke 2001, SAFE-T)"),
    pytest.param(Case("phq9", [], True, False, total_only=12),
                 id="synthea-report-and-total-12-positive (Synthea 3.3, Kroenke 2001)"),
]


def resources_of(case: Case) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The Patient, the screen's resources and the reference every surface names it by."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": PATIENT_ID}
    if case.gender is not None:
        patient["gender"] = case.gender
    if case.deceased is not None:
        patient["deceasedDateTime"] = case.deceased
    subject = {"reference": f"Patient/{PATIENT_ID}"}
    if case.total_only is not None:
        # Synthea 3.3: a DiagnosticReport with the panel code whose one
        # result is the total Observation, valueQuantity {score}, category survey.
        total = {"resourceType": "Observation", "id": "total-1", "status": "final",
                 "category": [{"coding": [{"system": SURVEY_SYSTEM, "code": "survey"}]}],
                 "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
                 "subject": subject, "effectiveDateTime": case.authored,
                 "valueQuantity": {"value": case.total_only, "unit": "{score}",
                                   "system": "http://unitsofmeasure.org", "code": "{score}"}}
        report = {"resourceType": "DiagnosticReport", "id": "report-1", "status": "final",
                  "code": {"coding": [{"system": LOINC, "code": "44249-1"}]},
                  "subject": subject, "effectiveDateTime": case.authored,
                  "result": [{"reference": "Observation/total-1"}]}
        return patient, [report, total], "DiagnosticReport/report-1"
    canonical = {"cssrs": "http://loinc.org/q/93373-9"}.get(case.instrument)
    qr = response(case.items, canonical=canonical, patient=PATIENT_ID, status=case.status)
    qr["authored"] = case.authored
    return patient, [qr], f"QuestionnaireResponse/{qr['id']}"


def plan_file(tmp_path: Path, case: Case) -> Path:
    if not case.plan:
        return PLAN
    text = PLAN.read_text(encoding="utf-8")
    for key, value in case.plan.items():
        text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        assert n == 1, key
    path = tmp_path / "practice-plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def via_score(tmp_path: Path, plan: Path, patient: dict[str, Any],
              screen: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (patient, *screen)]}
    path = tmp_path / "score.json"
    path.write_text(json.dumps(bundle))
    result = CliRunner().invoke(app, ["score", str(path), "--plan", str(plan),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout)
            if ref in (r["questionnaireResponse"], r.get("source"))]
    assert len(rows) == 1, result.stdout
    return dict(rows[0])


def via_apply(tmp_path: Path, plan: Path, patient: dict[str, Any],
              screen: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The rules that fired (JSON report) and the resource types of the --out Bundle."""
    folder = tmp_path / "in"
    folder.mkdir()
    for index, resource in enumerate((patient, *screen)):
        (folder / f"{index}.json").write_text(json.dumps(resource))
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(app, ["apply", str(folder), "--plan", str(plan), "--today",
                                      TODAY.isoformat(), "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == []
    rules = {a["rule"] for p in report["patients"] for a in p["actions"]}
    kinds = {e["resource"]["resourceType"] for e in json.loads(out.read_text())["entry"]}
    return rules, kinds


def via_sync(plan: Path, patient: dict[str, Any], screen: list[dict[str, Any]]
             ) -> tuple[dict[str, set[str]], bool | None]:
    """Resource types per workflow rule, and what the screening Observations it writes say
    of the screen: the total's or panel's POS/NEG interpretation, for the C-SSRS a risk level
    (positive at any level, cssrs.py); None when they say neither or none are written."""
    responses = [r for r in screen if r["resourceType"] == "QuestionnaireResponse"]
    others = [r for r in screen if r["resourceType"] != "QuestionnaireResponse"]
    planned = plan_patient(
        PatientContext(f"Patient/{PATIENT_ID}", patient, responses, others),
        protocol=load_protocol_files(), practice_plan=load_practice_plan(plan), today=TODAY,
        recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT,
    )
    assert planned.errors == []
    kinds: dict[str, set[str]] = {}
    for w in planned.writes:
        if w.rule != "screening":
            kinds.setdefault(w.rule, set()).add(w.resource_type)
    observations = [w.resource for w in planned.writes if w.rule == "screening"]
    codes = {c.get("code") for o in observations for i in o.get("interpretation") or ()
             for c in i.get("coding") or ()}
    risk = any(c.get("code") == CSSRS_RISK for o in observations
               for c in (o.get("code") or {}).get("coding") or ())
    positive = True if "POS" in codes or risk else False if "NEG" in codes else None
    return kinds, positive


def via_app(plan: Path, patient: dict[str, Any], screen: list[dict[str, Any]], ref: str
            ) -> tuple[bool | None, bool, dict[str, Any]]:
    """The screen's positive fact, whether the page lists a crisis, the registry row."""
    practice = load_practice_plan(plan)
    resources = [patient, *screen]
    view = patient_view(resources, TODAY, practice)
    facts = [s for s in view.facts.get("scores") or [] if s.get("response") == ref]
    assert len(facts) <= 1
    positive = facts[0].get("positive") if facts else None
    return positive, bool(view.crises), registry_row(resources, TODAY, practice)


_register()


@pytest.mark.parametrize("case", CASES)
def test_surfaces_agree(case: Case, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, case)
    patient, screen, ref = resources_of(case)
    alive = case.deceased is None
    work = WORK_RULE[case.instrument]

    scored = via_score(tmp_path, plan, patient, screen, ref)
    apply_rules, apply_kinds = via_apply(tmp_path, plan, patient, screen)
    sync_kinds, sync_positive = via_sync(plan, patient, screen)
    app_positive, app_crisis, app_row = via_app(plan, patient, screen, ref)

    # Positive / negative / unknown: one answer everywhere.
    assert scored["positive"] is case.positive
    assert app_positive is case.positive
    if case.total_only is None:  # sync writes screening Observations for responses only
        assert sync_positive is case.positive
    # The crisis: flagged by score, listed by the app, ServiceRequest + Task from apply and
    # sync alike — for a living patient.
    assert ("suicide-risk" in scored["flags"]) is case.crisis
    assert app_crisis is case.crisis
    assert (CRISIS in apply_rules) is (case.crisis and alive)
    if CRISIS in apply_rules:
        assert sync_kinds[CRISIS] == {"ServiceRequest", "Task"}
        assert {"ServiceRequest", "Task"} <= apply_kinds
    assert ("crisis" in app_row["flags"]) is (case.crisis and alive)
    # The work a positive screen starts, and none for the deceased.
    assert apply_rules == set(sync_kinds)
    assert apply_kinds == set().union(*sync_kinds.values())
    if work is not None:
        assert (work in apply_rules) is (case.positive is True and alive)
    if not alive:
        assert apply_rules == set()
        assert app_row["status"] == "deceased" and app_row["flags"] == []
    else:
        assert app_row["status"] == ""
