"""Who is worked: the patient's own record (deceased, inactive, merged) and crisis work that no
stale or missing field may suppress.

Sources: FHIR R4 Patient (https://hl7.org/fhir/R4/patient.html): ``deceased[x]`` "indicates if
the individual is deceased or not", ``active`` "whether this patient record is in active use",
``link.type`` replaced-by "the patient resource containing this link must no longer be used";
Medicare pays no services dated after death (CMS claims edits); request-status "revoked" =
terminated before completion (https://hl7.org/fhir/R4/valueset-request-status.html); crisis
(Kroenke 2001 item 9 > 0 needs same-day follow-up whatever the total, SAFE-T).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bhi_fhir.practice_plan import PracticePlan, parse_practice_plan
from bhi_fhir.workflow import apply
from bhi_fhir.workflow.pipeline import run_apply

from .helpers import (
    ROOT,
    TODAY,
    careplan,
    consent,
    contact,
    day,
    fired,
    patient,
    persist,
    plan,
    protocol,
    score,
    timeline,
)

NEW_WORK = {"engage", "consent", "enroll", "rescreen", "outreach", "psychiatric-review",
            "relapse-prevention", "phq9-followup", "brief-intervention"}  # fmt: skip


def _patient(**fields: Any) -> dict[str, Any]:
    return {**patient(), **fields}


def _plan(**records: Any) -> PracticePlan:
    data = tomllib.loads((ROOT / "examples" / "practice-plan.toml").read_text(encoding="utf-8"))
    data.setdefault("records", {}).update(records)
    return parse_practice_plan(data)


# --- the record's facts -------------------------------------------------------------------------
RECORD_ROWS = [
    # (Patient fields, deceased fact, inactive fact, source)
    ({}, None, None, "no deceased[x], no active: nothing is known, nothing is assumed"),
    ({"deceasedBoolean": False}, None, None, "R4 deceasedBoolean false: alive"),
    ({"deceasedBoolean": True}, {}, None, "R4 deceasedBoolean true: deceased, date unknown"),
    ({"deceasedDateTime": "2026-11-20T08:00:00-05:00"},
     {"date": "2026-11-20", "latest": "2026-11-20"}, None, "R4 deceasedDateTime"),
    ({"deceasedDateTime": "2026-11"}, {"date": "2026-11-01", "latest": "2026-11-30"}, None,
     "R4 dateTime may be partial: a month is its first to its last day"),
    ({"deceasedDateTime": "2026"}, {"date": "2026-01-01", "latest": "2026-12-31"}, None,
     "R4 dateTime may be a year"),
    ({"active": True}, None, None, "R4 active true: in use"),
    ({"active": False}, None, {}, "R4 active false: record not in active use"),
    ({"active": False, "link": [{"type": "replaced-by", "other": {"reference": "Patient/p2"}}]},
     None, {"replacedBy": "Patient/p2"}, "R4 link replaced-by: use the other record"),
    ({"link": [{"type": "seealso", "other": {"reference": "Patient/p2"}}]}, None, None,
     "R4 link seealso: both records stay in use"),
]


@pytest.mark.parametrize(
    ("fields", "deceased", "inactive", "source"),
    RECORD_ROWS,
    ids=["nothing", "boolean-false", "boolean-true", "datetime", "month", "year", "active",
         "inactive", "replaced-by", "seealso"],
)
def test_record_facts(
    fields: dict[str, Any], deceased: Any, inactive: Any, source: str
) -> None:
    facts = timeline([], [_patient(**fields)]).facts
    assert facts.get("deceased") == deceased, source
    assert facts.get("inactive") == inactive, source


def test_facts_come_from_the_patients_own_record() -> None:
    # After a merge the replaced record is read beside the surviving one: its fields (here
    # active false, another gender) are not this patient's.
    replaced = {"resourceType": "Patient", "id": "old", "active": False, "gender": "male",
                "link": [{"type": "replaced-by", "other": {"reference": "Patient/p1"}}]}
    facts = timeline([], [replaced, _patient()]).facts
    assert facts["sex"] == "female" and "inactive" not in facts


# --- deceased: no new work --------------------------------------------------------------------
# Screen 2 days ago: engage/consent are due 7 days after it (first_contact_days), on day(-5).
ENGAGE_DUE = day(-5)
DECEASED_ROWS = [
    # (Patient fields, new-work rules expected, source)
    ({}, {"engage", "consent"}, "alive: Kroenke 2001 positive screen → engage, consent"),
    ({"deceasedBoolean": True}, set(), "R4 deceasedBoolean true; no services after death"),
    ({"deceasedDateTime": day(30)}, set(), "died before the screen was acted on (Medicare)"),
    ({"deceasedDateTime": day(0)}, set(), "died today: nothing is due after death"),
    ({"deceasedDateTime": ENGAGE_DUE}, set(), "dies on the day the Task is due: none (Medicare)"),
    ({"deceasedDateTime": day(-6)}, {"engage", "consent"},
     "a death recorded after the due day (a run with an earlier --today): the work was due"),
    ({"deceasedDateTime": "2026-11"}, set(), "partial date: its first possible day counts"),
]


@pytest.mark.parametrize(
    ("fields", "expected", "source"),
    DECEASED_ROWS,
    ids=["alive", "boolean", "before", "today", "on-due-day", "after-due-day", "month"],
)
def test_deceased_gets_no_engagement(fields: dict[str, Any], expected: set[str], source: str
                                     ) -> None:
    rules = fired([score("phq9", 15, 2)], [_patient(**fields)])
    assert set(rules) & NEW_WORK == expected, source


# Each scenario fires its rule for a living patient; the same patient deceased gets nothing.
SCENARIOS = {
    "enroll": ([score("phq9", 15, 2)], [consent()],
               "AIMS phase 2 enrollment (CarePlan, initial assessment, follow-up measurement)"),
    "outreach": ([score("phq9", 15, 75), score("phq9", 12, 40)],
                 [careplan(70), consent(72), contact(40)], "Bao 2016/AIMS: no contact ≥4 weeks"),
    "psychiatric-review": ([score("phq9", 16, 65), score("phq9", 15, 3)],
                           [careplan(63), contact(3)], "Bao 2016 not improving by week 8"),
    "phq9-followup": ([score("phq2", 4, 1)], [], "Arroll 2010 positive PHQ-2 → PHQ-9"),
    "brief-intervention": ([score("auditc", 5, 1)], [], "US Core AUDIT-C positive AUDIT-C"),
    "relapse-prevention": ([score("phq9", 14, 40), score("phq9", 3, 3)],
                           [careplan(38), contact(3)], "NCQA DRR-E remission"),
}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
@pytest.mark.parametrize("deceased", [False, True], ids=["alive", "deceased"])
def test_deceased_gets_no_new_work(rule: str, deceased: bool) -> None:
    scores, resources, source = SCENARIOS[rule]
    record = _patient(deceasedDateTime=day(1)) if deceased else _patient()
    rules = fired(scores, [record, *resources])
    assert (rule in rules) is not deceased, f"{source}; deceased: no services after death"


def _open_work() -> list[dict[str, Any]]:
    """What bhi-fhir wrote for an enrolled patient: CarePlan + Tasks, as a server holds them."""
    first = apply(protocol(), timeline([score("phq9", 15, 2, ident="s")], [_patient(), consent()]),
                  plan())
    return persist(first.writes)


CLOSE_ROWS = [
    # (records.deceased_careplan_status, CarePlan status proposed, source)
    ("revoked", "revoked", "request-status revoked: terminated before completion (default)"),
    ("completed", "completed", "practice choice: count the episode as ended"),
    ("leave", None, "practice choice: a person closes the CarePlan"),
]


@pytest.mark.parametrize(("setting", "careplan_status", "source"), CLOSE_ROWS,
                         ids=["revoked", "completed", "leave"])
def test_deceased_open_work_is_proposed_for_closing(
    setting: str, careplan_status: str | None, source: str
) -> None:
    stored = _open_work()
    tasks = [r for r in stored if r["resourceType"] == "Task"]
    tasks[0]["status"] = "completed"  # finished work is history: left alone
    record = _patient(deceasedDateTime=day(1))
    p = _plan(deceased_careplan_status=setting)
    result = apply(protocol(), timeline([score("phq9", 15, 2, ident="s")], [record, *stored], ),
                   p)
    assert {w.rule for w in result.writes} <= {"deceased"}
    cancelled = [w for w in result.writes if w.resource_type == "Task"]
    assert len(cancelled) == len(tasks) - 1
    for write in cancelled:
        assert write.method == "update" and write.if_match == 'W/"1"'
        assert write.resource["status"] == "cancelled"
        assert write.resource["statusReason"]["text"].startswith(f"Patient deceased on {day(1)}")
    plans = [w for w in result.writes if w.resource_type == "CarePlan"]
    assert [w.resource["status"] for w in plans] == ([careplan_status] if careplan_status
                                                      else []), source
    if plans:
        assert plans[0].resource["period"]["end"] == day(1)
        assert "deceased" in plans[0].resource["note"][-1]["text"]


def test_deceased_close_out_is_idempotent() -> None:
    stored = _open_work()
    record = _patient(deceasedBoolean=True)
    first = apply(protocol(), timeline([], [record, *stored]), plan())
    assert first.writes
    second = apply(protocol(), timeline([], [record, *persist(first.writes)]), plan())
    assert second.writes == []  # cancelled and revoked are terminal: nothing more to do


# --- inactive records: no new work ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "source"),
    [({"active": False}, "R4 active false: the record is not in active use"),
     ({"link": [{"type": "replaced-by", "other": {"reference": "Patient/p2"}}]},
      "R4 link replaced-by: the surviving record gets the work")],
    ids=["active-false", "replaced-by"],
)
def test_inactive_record_gets_no_new_work(fields: dict[str, Any], source: str) -> None:
    assert set(fired([score("phq9", 15, 2)], [_patient(**fields), consent()])) == set(), source
    for rule, (scores, resources, _) in SCENARIOS.items():
        assert rule not in fired(scores, [_patient(**fields), *resources]), source


# --- crisis: never suppressed by a stale or missing field ---------------------------------------
CRISIS_ROWS = [
    # (resources, fires, source)
    ([], True, "no Patient resource at all: a crisis answer is never lost (Kroenke 2001)"),
    ([{"resourceType": "Patient", "id": "p1"}], True, "gender, active, deceased missing"),
    ([_patient(active=False)], True, "inactive record: the person screened at risk (SPRC SAFE-T)"),
    ([_patient(link=[{"type": "replaced-by", "other": {"reference": "Patient/p9"}}])], True,
     "replaced record whose survivor is not in the input: the crisis still goes out"),
    ([_patient(deceasedBoolean=False)], True, "R4 deceasedBoolean false"),
    ([_patient(deceasedDateTime=day(400))], True,
     "deceasedDateTime before the screen: the record is stale, the screen is newer (SPRC SAFE-T)"),
    ([_patient(deceasedDateTime=day(2))], True, "death recorded the day before the screen"),
    ([_patient(), careplan(20)], True, "enrolled"),
    ([_patient(), consent()], True, "consent, not enrolled"),
    ([_patient(deceasedDateTime=day(1))], False, "died on the screen's day: Medicare, no services"),
    ([_patient(deceasedDateTime=day(0))], False, "died after the screen (Medicare)"),
    ([_patient(deceasedBoolean=True)], False, "R4 deceasedBoolean true, date unknown (Medicare)"),
]


@pytest.mark.parametrize(
    ("resources", "fires", "source"),
    CRISIS_ROWS,
    ids=["no-patient", "bare-patient", "inactive", "replaced-survivor-absent", "alive-false",
         "death-long-before", "death-day-before", "enrolled", "consent-only", "death-same-day",
         "death-after", "deceased-boolean"],
)
def test_crisis_is_never_suppressed_for_a_living_patient(
    resources: list[dict[str, Any]], fires: bool, source: str
) -> None:
    rules = fired([score("phq9", 3, 1, item9=1), score("cssrs", None, 1, risk="high")],
                  resources)
    assessment = rules.get("crisis-assessment", [])
    referral = rules.get("crisis-referral", [])
    if fires:
        assert sorted(w.resource_type for w in assessment) == ["ServiceRequest", "Task"], source
        assert [w.priority for w in referral] == ["stat"], source
    else:
        assert assessment == [] and referral == [], source


def test_crisis_on_a_replaced_record_says_so() -> None:
    record = _patient(active=False,
                      link=[{"type": "replaced-by", "other": {"reference": "Patient/p9"}}])
    (write, _) = fired([score("phq9", 3, 1, item9=1)], [record])["crisis-assessment"]
    assert "(this record is replaced by Patient/p9)" in write.reason


# --- merged records in apply over files -------------------------------------------------------
def _merged_input(tmp_path: Path, *, survivor: bool, item9: int = 0) -> list[Path]:
    """A replaced record (Patient/old, link replaced-by Patient/new) holding a positive PHQ-9
    from 2 days ago, and the surviving Patient/new with consent on file, if ``survivor``."""
    from tests.instruments.build import PHQ9, frequency, response

    old = {"resourceType": "Patient", "id": "old", "active": False, "gender": "female",
           "link": [{"type": "replaced-by", "other": {"reference": "Patient/new"}}]}
    qr = response(frequency(PHQ9, [2] * 7 + [1, item9]), canonical="http://loinc.org/q/44249-1",
                  rid="q-old", patient="old")
    qr["authored"] = day(2)
    lines = [old, qr]
    if survivor:
        agreed = consent()
        agreed["patient"] = {"reference": "Patient/new"}
        lines += [{"resourceType": "Patient", "id": "new", "gender": "female"}, agreed]
    path = tmp_path / "merged.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return [path]


def _applied(paths: list[Path]) -> dict[str, set[str]]:
    report = run_apply(paths, plan(), TODAY)
    assert report.errors == []
    return {p.patient: {w.rule for w in p.writes} for p in report.plans}


def test_replaced_records_screens_belong_to_the_surviving_patient(tmp_path: Path) -> None:
    # R4 Patient.link replaced-by: the survivor (consent on file) is enrolled on the replaced
    # record's positive screen; the replaced record gets no work of its own.
    by_patient = _applied(_merged_input(tmp_path, survivor=True))
    assert set(by_patient) == {"Patient/new"}
    assert {"engage", "enroll"} <= by_patient["Patient/new"]
    report = run_apply(_merged_input(tmp_path, survivor=True), plan(), TODAY)
    for write in report.plans[0].writes:
        assert "Patient/new" in json.dumps(write.resource)
        assert "Patient/old" not in json.dumps(write.resource)


@pytest.mark.parametrize(("item9", "expected"), [(0, set()), (1, {"crisis-assessment"})],
                         ids=["no-crisis", "crisis"])
def test_replaced_record_without_its_survivor_gets_only_crisis_work(
    tmp_path: Path, item9: int, expected: set[str]
) -> None:
    # The survivor is not in the input: nothing is known about that person, so the record
    # stays inactive (no new work) but a crisis answer still gets its assessment (Kroenke 2001, SPRC
    # SAFE-T).
    by_patient = _applied(_merged_input(tmp_path, survivor=False, item9=item9))
    assert by_patient == {"Patient/old": expected}


def test_replaced_by_cycle_is_not_followed(tmp_path: Path) -> None:
    a = {"resourceType": "Patient", "id": "a",
         "link": [{"type": "replaced-by", "other": {"reference": "Patient/b"}}]}
    b = {"resourceType": "Patient", "id": "b",
         "link": [{"type": "replaced-by", "other": {"reference": "Patient/a"}}]}
    path = tmp_path / "cycle.ndjson"
    path.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    assert set(_applied([path])) == {"Patient/a", "Patient/b"}


# --- the registry shows them apart ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "status", "flags", "source"),
    [
        ({}, "", ["no contact 4 weeks", "not improving"],
         "AIMS Center registry flags: no contact ≥4 weeks; week ≥8 and <50% better"),
        ({"deceasedDateTime": day(10)}, "deceased", [], "no outreach after death"),
        ({"deceasedBoolean": True}, "deceased", [], "R4 deceasedBoolean true"),
        ({"deceasedDateTime": day(-3)}, "", ["no contact 4 weeks", "not improving"],
         "a death recorded after today (a run with an earlier today) is not yet a death"),
        ({"active": False}, "inactive record", [], "R4 active false: no new work"),
    ],
    ids=["alive", "deceased", "deceased-boolean", "death-after-today", "inactive"],
)
def test_registry_row_shows_deceased_and_inactive_apart(
    fields: dict[str, Any], status: str, flags: list[str], source: str
) -> None:
    from smart_app.views_model import registry_row

    resources = [_patient(**fields), careplan(70), consent(72), contact(40)]
    row = registry_row(resources, TODAY, plan())
    assert (row["status"], row["flags"]) == (status, flags), source
    assert row["review"] is ("not improving" in flags), source


def test_registry_template_lists_them_apart() -> None:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "smart_app" / "templates"),
                             autoescape=True)  # fmt: skip
    env.globals.update(url_for=lambda *a, **k: "")
    row = {"id": "p1", "name": "A", "phq9": None, "gad7": None, "change": None, "weeks": None,
           "last_contact": "", "minutes": None, "review": False}  # fmt: skip
    rows = [{**row, "status": "", "flags": ["no contact 4 weeks"]},
            {**row, "id": "p2", "name": "B", "status": "deceased", "flags": []}]
    html = env.get_template("registry.html").render(rows=rows, review=[], agenda=[], flag="",
                                                    sort="flags", today="2026-11-26")
    table, apart = html.split('id="apart"')
    assert "/patient/p1" in table and "/patient/p2" not in table
    assert "/patient/p2" in apart and "deceased" in apart and "no contact" not in apart
