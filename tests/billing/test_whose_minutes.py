"""Whose minutes count: care-team roles, death, episode end, and staff logging the same time."""

from __future__ import annotations

import pytest

from bhi_fhir.billing._time import Month
from bhi_fhir.billing.codes import BilledCode
from bhi_fhir.billing.ledger import PatientMonth, Rejected, close_month, group_by_patient
from bhi_fhir.billing.rules import CodingKey

from .builders import (
    BHCM,
    BHCM2,
    PATIENT,
    PCP,
    PSYCH,
    RULES,
    careplan,
    chart,
    entry,
)
from .sources import (
    CMS_FAQ_OWN_TIME,
    CPT_ONE_PERSON,
    S6_BHCM,
    S6_DEATH,
    S6_GENERAL_BHI,
    S22_EPISODE_END,
)

OTHER = "Practitioner/front-desk"
PSY = "Practitioner/psy"  # a clinical psychologist billing G0323


def close(
    resources, rules=RULES, month="2026-10"
) -> tuple[dict[str, PatientMonth], list[Rejected]]:
    record = group_by_patient(resources)[PATIENT]
    months, rejected = close_month(record, Month.parse(month), rules)
    return {m.program: m for m in months}, rejected


def codes(pm: PatientMonth) -> list[tuple[str, int]]:
    return [(c.code, c.units) for c in pm.codes]


# ------------------------------------------------------------------ CoCM: BHCM time only

# (BHCM minutes, other people's 10 minutes by, codes of the first month, source)
COCM_ROLE_ROWS = [
    (35, None, [("G2214", 1)], S6_BHCM),
    (36, None, [("99492", 1)], S6_BHCM),
    (35, PSYCH, [("G2214", 1)], S6_BHCM),  # the consultant's 10 do not reach 99492
    (36, PSYCH, [("99492", 1)], S6_BHCM),  # nor add to it: 36 counted, not 46
    (35, PCP, [("G2214", 1)], S6_BHCM),  # the billing practitioner's time is inside the code
    (35, OTHER, [("G2214", 1)], S6_BHCM),  # not a care manager
    (35, BHCM2, [("99492", 1)], S6_BHCM),  # a second care manager's time adds up
    (15, None, [], S6_BHCM),
    (15, PSYCH, [], S6_BHCM),  # 25 recorded, 15 counted: under G2214's 16
    (16, None, [("G2214", 1)], S6_BHCM),
]


@pytest.mark.parametrize(
    ("bhcm", "other", "expected", "source"),
    COCM_ROLE_ROWS,
    ids=[f"bhcm{b}+{(o or 'nobody').split('/')[-1]}" for b, o, _, _ in COCM_ROLE_ROWS],
)
def test_cocm_counts_care_manager_time_only(bhcm, other, expected, source):
    resources = [*chart(), entry("2026-10-05 10:00", bhcm)]
    if other is not None:
        resources.append(entry("2026-10-12 10:00", 10, clinician=other))
    months, rejected = close(resources)
    pm = months["cocm"]
    assert codes(pm) == expected, source
    assert pm.minutes == bhcm + (10 if other == BHCM2 else 0), source
    assert pm.recorded_minutes == bhcm + (10 if other else 0)
    refused = [r for r in rejected if r.code.startswith("not-care-manager")]
    if other in (None, BHCM2):
        assert refused == []
    else:
        (why,) = refused
        assert why.minutes == 10 and other in why.reason and "care manager" in why.reason
        assert why in pm.not_counted


@pytest.mark.parametrize(
    ("clinician", "code"),
    [
        (PSYCH, "not-care-manager:psychiatric-consultant"),
        (PCP, "not-care-manager:billing-practitioner"),
        (OTHER, "not-care-manager:other"),
    ],
    ids=["consultant", "billing-practitioner", "unknown"],
)
def test_each_refused_entry_says_whose_time_it_was(clinician, code):
    months, rejected = close([*chart(), entry("2026-10-05 10:00", 40, clinician=clinician)])
    assert months["cocm"].minutes == 0, S6_BHCM
    assert [(r.code, r.minutes) for r in rejected] == [(code, 40)], S6_BHCM


def test_consultant_marked_by_care_team_role_is_not_a_care_manager():
    """A consultant the plan does not list, known only by the CareTeam role 80584001."""
    rules = RULES.model_copy(update={"psychiatric_consultants": []})
    months, rejected = close([*chart(), entry("2026-10-05 10:00", 40, clinician=PSYCH)], rules)
    assert months["cocm"].minutes == 0, S6_BHCM
    assert [r.code for r in rejected] == ["not-care-manager:psychiatric-consultant"]


def test_care_manager_known_by_care_team_role():
    """The practice may mark care managers by a CareTeam role coding instead of listing them."""
    role = CodingKey(system="urn:example:roles", code="bhcm")
    rules = RULES.model_copy(update={"care_managers": [], "care_manager_roles": [role]})
    resources = [*chart(), entry("2026-10-05 10:00", 36, clinician=OTHER)]
    team = next(r for r in resources if r["resourceType"] == "CareTeam")
    without, _ = close(resources, rules)
    assert without["cocm"].minutes == 0, S6_BHCM
    team["participant"].append(
        {"role": [{"coding": [{"system": role.system, "code": role.code}]}],
         "member": {"reference": OTHER}}
    )  # fmt: skip
    with_role, _ = close(resources, rules)
    assert codes(with_role["cocm"]) == [("99492", 1)], S6_BHCM


def test_entry_naming_nobody_is_not_counted():
    e = entry("2026-10-05 10:00", 40)
    del e["participant"]
    months, rejected = close([*chart(), e])
    assert months["cocm"].minutes == 0, S6_BHCM
    assert [r.code for r in rejected] == ["no-performer"]


# ------------------------------------------------------------------ general BHI

# (billing practitioner qualification, [(minutes, clinician)], codes, source)
BHI_ROWS = [
    ("physician", [(19, BHCM)], [], S6_GENERAL_BHI),
    ("physician", [(20, BHCM)], [("99484", 1)], S6_GENERAL_BHI),
    ("physician", [(19, BHCM), (10, PSYCH)], [], S6_GENERAL_BHI),
    ("physician", [(15, BHCM), (5, PCP)], [("99484", 1)], CMS_FAQ_OWN_TIME),
    ("physician", [(19, BHCM), (5, OTHER)], [], S6_GENERAL_BHI),
    ("psychologist", [(20, PSY)], [("G0323", 1)], S6_GENERAL_BHI),
    ("psychologist", [(19, PSY)], [], S6_GENERAL_BHI),
    ("psychologist", [(19, PSY), (10, BHCM)], [], S6_GENERAL_BHI),  # G0323: own time only
    ("psychologist", [(20, BHCM)], [], S6_GENERAL_BHI),
]


@pytest.mark.parametrize(
    ("qualification", "logged", "expected", "source"),
    BHI_ROWS,
    ids=[
        f"{q}-" + "+".join(f"{m}{c.split('/')[-1]}" for m, c in logged)
        for q, logged, _, _ in BHI_ROWS
    ],
)
def test_general_bhi_counts_whose_time(qualification, logged, expected, source):
    biller = PSY if qualification == "psychologist" else PCP
    rules = RULES.model_copy(
        update={
            "program": "bhi",
            "billing_practitioner": biller,
            "billing_practitioner_qualification": qualification,
        }
    )
    resources = [*chart()]
    for day, (minutes, clinician) in enumerate(logged, start=5):
        resources.append(entry(f"2026-10-{day:02d} 10:00", minutes, clinician=clinician))
    months, _ = close(resources, rules)
    assert codes(months["bhi"]) == expected, source


# ------------------------------------------------------------------ death

# (Patient.deceasedDateTime, the last entry's start, its minutes, counted, codes, source)
DEATH_ROWS = [
    (None, "2026-10-16 00:00", 1, 36, [("99492", 1)], S6_DEATH),
    ("2026-10-15", "2026-10-15 23:59", 1, 36, [("99492", 1)], S6_DEATH),
    ("2026-10-15", "2026-10-16 00:00", 1, 35, [("G2214", 1)], S6_DEATH),
    # a time of death: the rule is the date of service, so the rest of that day still counts
    ("2026-10-15T08:00:00-04:00", "2026-10-15 23:59", 1, 36, [("99492", 1)], S6_DEATH),
    ("2026-10-15T08:00:00-04:00", "2026-10-16 00:00", 1, 35, [("G2214", 1)], S6_DEATH),
    # crossing midnight: the minutes of the day of death count, the next day's do not
    ("2026-10-15", "2026-10-15 23:50", 20, 45, [("99492", 1)], S6_DEATH),
]


@pytest.mark.parametrize(
    ("deceased", "start", "minutes", "counted", "expected", "source"),
    DEATH_ROWS,
    ids=[f"died-{d}-entry-{s.replace(' ', 'T')}+{m}" for d, s, m, _, _, _ in DEATH_ROWS],
)
def test_no_minutes_after_the_date_of_death(deceased, start, minutes, counted, expected, source):
    resources = [*chart(), entry("2026-10-05 10:00", 35), entry(start, minutes)]
    if deceased is not None:
        resources[0]["deceasedDateTime"] = deceased
    months, rejected = close(resources)
    pm = months["cocm"]
    assert (pm.minutes, codes(pm)) == (counted, expected), source
    after = [r for r in rejected if r.code == "after-death"]
    cut = 35 + minutes - counted
    assert [r.minutes for r in after] == ([cut] if cut else []), source


def test_deceased_without_a_date_holds_the_month():
    resources = [*chart(), entry("2026-10-05 10:00", 40)]
    resources[0]["deceasedBoolean"] = True
    months, _ = close(resources)
    assert not months["cocm"].billable
    assert "deceased-date-unknown" in {r.code for r in months["cocm"].reasons}, S6_DEATH
    resources[0]["deceasedBoolean"] = False
    months, _ = close(resources)
    assert months["cocm"].billable, S6_DEATH


# ------------------------------------------------------------------ end of the episode


def _chart_with_plan(plan: dict) -> list[dict]:
    return [plan if r["resourceType"] == "CarePlan" else r for r in chart()]


# (CarePlan status, period.end, meta.lastUpdated, last entry start, counted, source)
EPISODE_ROWS = [
    ("completed", "2026-10-15", None, "2026-10-15 23:59", 36, S22_EPISODE_END),
    ("completed", "2026-10-15", None, "2026-10-16 00:00", 35, S22_EPISODE_END),
    ("revoked", "2026-10-15", None, "2026-10-16 00:00", 35, S22_EPISODE_END),
    # no period.end: ended at the latest when last changed
    ("completed", None, "2026-10-15T12:00:00-04:00", "2026-10-15 11:59", 36, S22_EPISODE_END),
    ("revoked", None, "2026-10-15T12:00:00-04:00", "2026-10-15 12:00", 35, S22_EPISODE_END),
    ("active", None, "2026-10-15T12:00:00-04:00", "2026-10-15 12:00", 36, S22_EPISODE_END),
]


@pytest.mark.parametrize(
    ("status", "end", "updated", "start", "counted", "source"),
    EPISODE_ROWS,
    ids=[f"{st}-end{e}-upd{u}-entry-{s.replace(' ', 'T')}" for st, e, u, s, _, _ in EPISODE_ROWS],
)
def test_no_minutes_after_the_episode_ended(status, end, updated, start, counted, source):
    plan = careplan("2026-01-05", end)
    plan["status"] = status
    if updated is not None:
        plan["meta"] = {"lastUpdated": updated}
    resources = [*_chart_with_plan(plan), entry("2026-10-05 10:00", 35), entry(start, 1)]
    months, rejected = close(resources)
    assert months["cocm"].minutes == counted, source
    ended = [r for r in rejected if r.code == "after-episode-end"]
    assert [r.minutes for r in ended] == ([1] if counted == 35 else []), source


def test_ended_plan_without_any_date_is_warned():
    plan = careplan("2026-01-05")
    plan["status"] = "completed"
    months, _ = close([*_chart_with_plan(plan), entry("2026-10-05 10:00", 40)])
    assert months["cocm"].minutes == 40
    assert any("episode's end is unknown" in w for w in months["cocm"].warnings), S22_EPISODE_END


# ------------------------------------------------------------------ staff logging the same time

# ([(start, minutes, clinician)], counted, overlap warnings, source)
OVERLAP_ROWS = [
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:00", 30, BHCM2)], 30, 1, CPT_ONE_PERSON),
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:15", 30, BHCM2)], 45, 1, CPT_ONE_PERSON),
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:30", 30, BHCM2)], 60, 0, CPT_ONE_PERSON),
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:29", 30, BHCM2)], 59, 1, CPT_ONE_PERSON),
    # the same person twice: merged as before, no warning
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:15", 30, BHCM)], 45, 0, CPT_ONE_PERSON),
    # a psychiatrist's overlapping time is not counted at all, so nothing overlaps
    ([("2026-10-05 10:00", 30, BHCM), ("2026-10-05 10:00", 30, PSYCH)], 30, 0, S6_BHCM),
]


@pytest.mark.parametrize(
    ("logged", "counted", "warned", "source"),
    OVERLAP_ROWS,
    ids=["same-interval", "partial-15", "touching", "overlap-1min", "same-person", "consultant"],
)
def test_two_staff_logging_the_same_time_count_it_once(logged, counted, warned, source):
    resources = [*chart(), *(entry(s, m, clinician=c) for s, m, c in logged)]
    pm, _ = close(resources)
    assert pm["cocm"].minutes == counted, source
    overlaps = [w for w in pm["cocm"].warnings if "overlap by" in w]
    assert len(overlaps) == warned, source


def _date_only(day: str, minutes: int, clinician: str) -> dict:
    e = entry(f"{day} 10:00", minutes, clinician=clinician)
    e["period"] = {"start": day, "end": day}
    return e


def test_duration_only_entries_are_added_as_recorded_and_said_so():
    """A date and a duration but no clock time: no overlap can be told, so each entry is
    added as recorded (two 20-minute calls the same day are 40 minutes, whoever logged them)
    and the month says so."""
    resources = [
        *chart(),
        _date_only("2026-10-05", 20, BHCM),
        _date_only("2026-10-05", 20, BHCM),
        _date_only("2026-10-05", 20, BHCM2),
    ]
    pm, _ = close(resources)
    assert pm["cocm"].minutes == 60
    assert any("3 entries give a date and a duration" in w for w in pm["cocm"].warnings)
    assert not any("overlap by" in w for w in pm["cocm"].warnings)
    assert pm["cocm"].codes == (BilledCode("99492"),)
