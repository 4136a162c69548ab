"""Generate the synthetic clinic in examples/clinic/ (bulk-export NDJSON, one file per type).

Deterministic: a fixed seed and a fixed "today" (2026-11-26) give byte-identical output, so the
committed files can be regenerated and diffed. Every patient is synthetic.

Each patient follows one scenario, chosen so that every rule of the protocol fires somewhere,
and every boundary the tests check (scores 4/5 and 9/10, weeks 7/8/12, 49%/50% improvement)
occurs in the clinic. Responses are LOINC-coded: PHQ-9 items 44250-9 …
44260-8 with LA6568-5/LA6569-3/LA6570-1/LA6571-9, GAD-7, PHQ-2, C-SSRS screener (93373-9, LA33-6
yes / LA32-8 no) and AUDIT-C.

Billing (CMS MLN909432): after the scenarios, :func:`add_billing` gives every enrolled
patient what a billable CoCM patient-month needs (CMS MLN909432) — an initiating E/M office visit on
the day of the baseline screen (CPT in Encounter.type), a CareTeam with the practice plan's billing
practitioner, care manager and psychiatric consultant (SNOMED 80584001) — and timed
care-management entries (:func:`bhi_fhir.billing.representation.time_entry`) in 2026-09, 2026-10
and 2026-11 (up to the day before the scenario's last contact, so no workflow fact changes).
``TIME_PLANS`` fixes the minutes per scenario instance so that ``bhi-fhir bill --month 2026-10``
shows every CPT midpoint-rule threshold and the reasons a month is not billable (no consent, under
16 min). This pass draws from its own seeded generator and its own ids, so the scenario resources
(and the benchmark stream built from ``SCENARIOS``) are unchanged by it.

    python examples/generate_clinic.py                 # examples/clinic/, 66 patients
    python examples/generate_clinic.py --patients 10000 --out /tmp/clinic   # benchmark size
"""

from __future__ import annotations

import argparse
import json
import random
import tomllib
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bhi_fhir.billing.representation import PARTICIPATION_TYPE, ContactMode, time_entry

TODAY = date(2026, 11, 26)
SEED = 20261126
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
BHI_ACTIVITY = "https://bhi-fhir.dev/fhir/CodeSystem/bhi-activity"
BHI_IDENTIFIER = "https://bhi-fhir.dev/fhir/identifier"

# LOINC LL358-3: points → LA code
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
PHQ9_ITEMS = [  # LOINC, item order 1..9
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
]  # fmt: skip
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]  # LOINC
PHQ2_ITEMS = ["44250-9", "44255-8"]  # LOINC
CSSRS_ITEMS = ["93246-7", "93247-5", "93248-3", "93249-1", "93250-9", "93267-3"]  # LOINC
YES, NO = "LA33-6", "LA32-8"
# AUDIT-C answers by points (US Core AUDIT-C)
AUDITC = {
    "68518-0": ["LA6270-8", "LA18926-8", "LA18927-6", "LA18928-4", "LA18929-2"],
    "68519-8": ["LA15694-5", "LA15695-2", "LA18930-0", "LA18931-8", "LA18932-6"],
    "68520-6": ["LA6270-8", "LA18933-4", "LA18876-5", "LA18891-4", "LA18934-2"],
}
CARE_MANAGERS = ["Practitioner/bhcm-garcia", "Practitioner/bhcm-okafor"]
PRACTICE_PLAN = Path(__file__).parent / "practice-plan.toml"
CPT = "http://www.ama-assn.org/go/cpt"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# SNOMED "Psychiatrist (occupation)": the consultant's role (CMS MLN909432 Team)
PSYCHIATRIST = "80584001"
TIME_ENTRY_SYSTEM = "urn:example:riverside-ehr:time-entry"  # the EHR's time-entry identifiers

Resource = dict[str, Any]


class Clinic:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.by_type: dict[str, list[Resource]] = {}
        self.counter = 0

    def add(self, resource: Resource) -> Resource:
        self.by_type.setdefault(resource["resourceType"], []).append(resource)
        return resource

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:06d}"


def _day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def _answer(code: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": LOINC, "code": code}}]


def _spread(total: int, slots: int, cap: int = 3) -> list[int]:
    points = [0] * slots
    for i in range(total):
        points[i % slots] += 1
    if max(points) > cap:
        raise ValueError(f"total {total} does not fit {slots} items")
    return points


def _qr(
    clinic: Clinic, patient: str, panel: str, items: list[tuple[str, str]], days_ago: int
) -> str:
    ident = clinic.next_id("qr")
    clinic.add(
        {
            "resourceType": "QuestionnaireResponse",
            "id": ident,
            "meta": {"versionId": "1"},
            "questionnaire": f"http://loinc.org/q/{panel}",
            "status": "completed",
            "subject": {"reference": patient},
            "authored": _day(days_ago),
            "item": [{"linkId": link, "answer": _answer(code)} for link, code in items],
        }
    )
    return ident


def phq9(clinic: Clinic, patient: str, total: int, days_ago: int, item9: int = 0) -> str:
    points = [*_spread(total - item9, 8), item9]
    items = [(code, FREQUENCY[p]) for code, p in zip(PHQ9_ITEMS, points, strict=True)]
    return _qr(clinic, patient, "44249-1", items, days_ago)


def gad7(clinic: Clinic, patient: str, total: int, days_ago: int) -> str:
    points = _spread(total, 7)
    items = [(code, FREQUENCY[p]) for code, p in zip(GAD7_ITEMS, points, strict=True)]
    return _qr(clinic, patient, "69737-5", items, days_ago)


def phq2(clinic: Clinic, patient: str, total: int, days_ago: int) -> str:
    points = _spread(total, 2)
    items = [(code, FREQUENCY[p]) for code, p in zip(PHQ2_ITEMS, points, strict=True)]
    return _qr(clinic, patient, "55757-9", items, days_ago)


def cssrs(clinic: Clinic, patient: str, risk: str, days_ago: int) -> str:
    # Columbia C-SSRS triage: high = Q4 or Q5 yes; moderate = Q3 yes; low = only Q1 or Q2 yes.
    answers = {
        "high": [YES, YES, YES, YES, NO, NO],
        "moderate": [YES, YES, YES, NO, NO, NO],
        "low": [YES, NO, None, None, None, NO],
        "none": [NO, NO, None, None, None, NO],
    }[risk]
    items = [(c, a) for c, a in zip(CSSRS_ITEMS, answers, strict=True) if a is not None]
    return _qr(clinic, patient, "93373-9", items, days_ago)


def auditc(clinic: Clinic, patient: str, q1: int, q2: int, q3: int, days_ago: int) -> str:
    points = dict(zip(AUDITC, (q1, q2, q3), strict=True))
    items = [(code, AUDITC[code][p]) for code, p in points.items()]
    return _qr(clinic, patient, "72109-2", items, days_ago)


def enroll(clinic: Clinic, patient: str, days_ago: int, manager: str, qr: str) -> str:
    """The BHI CarePlan bhi-fhir's enroll rule wrote earlier for ``qr`` (its identifier)."""
    ident = clinic.next_id("cp")
    clinic.add(
        {
            "resourceType": "CarePlan",
            "id": ident,
            "meta": {"versionId": "1"},
            "identifier": [
                {"system": BHI_IDENTIFIER,
                 "value": f"enroll.careplan:QuestionnaireResponse/{qr}/_history/1"}
            ],
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>BHI care plan</p></div>',
            },
            "status": "active",
            "intent": "plan",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                            "code": "assess-plan",
                        }
                    ]
                },
                {"coding": [{"system": SNOMED, "code": "718347000"}]},
            ],
            "subject": {"reference": patient},
            "period": {"start": _day(days_ago)},
            "contributor": [{"reference": manager}],
        }
    )
    return ident


def consent(clinic: Clinic, patient: str, days_ago: int) -> None:
    clinic.add(
        {
            "resourceType": "Consent",
            "id": clinic.next_id("consent"),
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "treatment",
                    }
                ]
            },
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": patient},
            "dateTime": _day(days_ago),
        }
    )


def contact(
    clinic: Clinic, patient: str, days_ago: int, manager: str, virtual: bool = False
) -> None:
    """A care-management contact: the care manager's own time, so it names them as performer
    (as ``time_entry`` does); CoCM minutes are care-manager time (CMS MLN909432)."""
    clinic.add(
        {
            "resourceType": "Encounter",
            "id": clinic.next_id("enc"),
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "VR" if virtual else "AMB",
            },
            "type": [{"coding": [{"system": BHI_ACTIVITY, "code": "care-management-contact"}]}],
            "subject": {"reference": patient},
            "participant": [
                {
                    "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF"}]}],
                    "individual": {"reference": manager},
                }
            ],
            "period": {"start": _day(days_ago), "end": _day(days_ago)},
            "length": {
                "value": 20,
                "unit": "min",
                "system": "http://unitsofmeasure.org",
                "code": "min",
            },
        }
    )


def completed_engage(clinic: Clinic, patient: str, qr: str, days_ago: int) -> None:
    """An engage Task bhi-fhir wrote for ``qr`` earlier, completed by the care manager."""
    clinic.add(
        {
            "resourceType": "Task",
            "id": clinic.next_id("task"),
            "meta": {"versionId": "2"},
            "identifier": [
                {"system": BHI_IDENTIFIER, "value": f"engage:QuestionnaireResponse/{qr}/_history/1"}
            ],
            "status": "completed",
            "intent": "order",
            "code": {"coding": [{"system": BHI_ACTIVITY, "code": "engage"}]},
            "for": {"reference": patient},
            "executionPeriod": {"end": _day(days_ago)},
        }
    )


# --- scenarios: (name, what fires, builder) ------------------------------------------------------
Scenario = tuple[str, str, Callable[[Clinic, str, str], None]]


def _s_phq9(total: int, item9: int = 0) -> Callable[[Clinic, str, str], None]:
    return lambda c, p, m: (phq9(c, p, total, c.rng.randint(1, 5), item9), None)[1]


def _enrolled(
    weeks: int, baseline: int, latest: int | None, contact_days: int | None = 6
) -> Callable[[Clinic, str, str], None]:
    def build(c: Clinic, p: str, m: str) -> None:
        start = weeks * 7 + c.rng.randint(0, 6)
        qr = phq9(c, p, baseline, start + 3)
        consent(c, p, start + 1)
        enroll(c, p, start, m, qr)
        if latest is not None:
            phq9(c, p, latest, 5)
        if contact_days is not None:
            contact(c, p, contact_days, m, virtual=c.rng.random() < 0.3)

    return build


def _screen_consent(c: Clinic, p: str, m: str) -> None:
    phq9(c, p, 15, 2)
    consent(c, p, 1)


def _gad(c: Clinic, p: str, m: str) -> None:
    gad7(c, p, 12, c.rng.randint(1, 5))


def _two_crises(c: Clinic, p: str, m: str) -> None:
    phq9(c, p, 8, 9, item9=1)
    phq9(c, p, 7, 2, item9=2)


def _cssrs(risk: str) -> Callable[[Clinic, str, str], None]:
    return lambda c, p, m: (cssrs(c, p, risk, c.rng.randint(0, 3)), None)[1]


def _phq2_then(phq9_total: int | None) -> Callable[[Clinic, str, str], None]:
    def build(c: Clinic, p: str, m: str) -> None:
        phq2(c, p, 4, 3)
        if phq9_total is not None:
            phq9(c, p, phq9_total, 3)

    return build


def _auditc(q1: int, q2: int, q3: int) -> Callable[[Clinic, str, str], None]:
    return lambda c, p, m: (auditc(c, p, q1, q2, q3, 4), None)[1]


def _engaged_before(c: Clinic, p: str, m: str) -> None:
    qr = phq9(c, p, 11, 12)
    completed_engage(c, p, qr, 8)


def _stale_screens(c: Clinic, p: str, m: str) -> None:
    # Older than the plan's screening.lookback_days (30): history, nothing to act on.
    phq9(c, p, 15, 45)
    phq2(c, p, 4, 60)
    auditc(c, p, 2, 2, 2, 90)


def _outreach(c: Clinic, p: str, m: str) -> None:
    _enrolled(6, 14, None, contact_days=None)(c, p, m)


SCENARIOS: list[Scenario] = [
    ("phq9-4", "nothing (Kroenke 2001 minimal)", _s_phq9(4)),
    ("phq9-5", "nothing (Kroenke 2001 mild, below 10)", _s_phq9(5)),
    ("phq9-9", "nothing (Kroenke 2001 below 10)", _s_phq9(9)),
    ("phq9-10", "engage + consent (Kroenke 2001 positive at 10)", _s_phq9(10)),
    ("gad7-12", "engage + consent (Spitzer 2006)", _gad),
    ("phq9-15-consent", "engage + enroll (AIMS Center, CMS MLN909432)", _screen_consent),
    ("phq9-item9", "crisis-assessment (Kroenke 2001 item 9)", _s_phq9(8, item9=1)),
    ("cssrs-high", "crisis-assessment + crisis-referral stat (Columbia triage)", _cssrs("high")),
    ("cssrs-moderate", "crisis-assessment + crisis-referral urgent", _cssrs("moderate")),
    ("cssrs-low", "crisis-assessment only", _cssrs("low")),
    ("cssrs-none", "nothing", _cssrs("none")),
    ("phq2-4", "phq9-followup (Arroll 2010)", _phq2_then(None)),
    ("phq2-then-phq9", "nothing: PHQ-9 done the same day (HEDIS DSF-E)", _phq2_then(6)),
    ("auditc-f3", "brief-intervention (female ≥3, US Core AUDIT-C)", _auditc(1, 1, 1)),
    ("auditc-m3", "nothing for a man (≥4, US Core AUDIT-C)", _auditc(1, 1, 1)),
    ("week9-25pct", "psychiatric-review (Bao 2016)", _enrolled(9, 16, 12)),
    ("week9-50pct", "nothing: response (NCQA DRR-E)", _enrolled(9, 16, 8)),
    ("week7-no-change", "nothing yet: before week 8 (Bao 2016)", _enrolled(7, 16, 15)),
    ("week10-remission", "relapse-prevention (NCQA DRR-E)", _enrolled(10, 14, 4)),
    ("week6-no-contact", "outreach (Bao 2016, AIMS Center)", _outreach),
    ("week3-on-track", "nothing", _enrolled(3, 13, 11)),
    ("engaged-before", "consent; engage completed, not reopened", _engaged_before),
    ("two-crises", "crisis-assessment twice (never deduplicated)", _two_crises),
    ("stale-screens", "nothing: positive screens older than the lookback", _stale_screens),
    ("auditc-q1-only-f", "brief-intervention noting Q1-only points (US Core)", _auditc(3, 0, 0)),
]


# --- billing: initiating visit, care team, care-management time (CMS MLN909432) --------------
# Per scenario, one plan per instance (patients 15, 40, 65 … of a scenario take plans 0, 1, 2 …,
# cycling). Minutes of each contact by month; "engage" = outreach calls between the positive
# screen and consent (recorded, never counted: CMS MLN909432 consent). Months are counted from the
# enrollment day on; 2026-09 makes 2026-10 a later CoCM month (99493) for September enrollments.
# The 2026-10 outcome each plan is built for (CPT midpoint rule, physician office, first/later
# month):
TimePlan = dict[str, tuple[int, ...]]
TIME_PLANS: dict[str, list[TimePlan]] = {
    "week9-25pct": [  # enrolled in September: 2026-10 is a later month
        {"2026-09": (40, 15), "2026-10": (20, 15, 10), "2026-11": (15, 10)},  # 45 → 99493
        {"2026-09": (45, 20, 10), "2026-10": (30, 20, 15, 10, 10), "2026-11": (20, 15)},
        # ↑ 85 → 99493 + 99494 (76–105)
        {"2026-09": (35, 10), "2026-10": (12, 10), "2026-11": (10,)},  # 22 → G2214 (16–30)
    ],
    "week9-50pct": [
        {"2026-09": (45, 15), "2026-10": (20, 15, 15, 12), "2026-11": (15, 10)},  # 62 → 99493
        {"2026-09": (40, 20), "2026-10": (12,), "2026-11": (10,)},  # 12 → nothing (<16)
    ],
    "week10-remission": [
        {"2026-09": (50, 20, 15), "2026-10": (30, 25, 20, 20, 15), "2026-11": (15,)},
        # ↑ 110 → 99493 + 99494×2 (106–135)
        {"2026-09": (45, 15), "2026-10": (20, 15), "2026-11": (10, 10)},  # 35 → 99493
    ],
    "week7-no-change": [  # enrolled in October: 2026-10 is the first month
        {"2026-10": (40, 10), "2026-11": (25, 15, 10)},  # 50 → 99492 (36–85)
        {"2026-10": (45, 20, 15, 15), "2026-11": (30, 20, 15)},  # 95 → 99492 + 99494 (86–115)
    ],
    "week3-on-track": [  # enrolled on 30/31 October, consent the day before
        {"engage": (15,), "2026-10": (25,), "2026-11": (30, 20, 10)},  # 25 → G2214 (16–35)
        {"engage": (12,), "2026-10": (10,), "2026-11": (30, 15)},  # 10 → nothing (<16)
    ],
    "stale-screens": [  # positive PHQ-9 on 12 October, calls, never consented
        {"engage": (15, 10, 10)},  # → nothing: no consent (CMS MLN909432)
        {"engage": (20, 10)},
    ],
    # week6-no-contact: enrolled, visit and team, but no contact at all (the outreach rule).
}
BILLING_MONTH_END = {"2026-11": date(2026, 11, 19)}  # the scenarios' last contact is 11-20
E_M_CODE = {False: ("99213", 20), True: ("99214", 30)}  # established patient office visit
_MODES: tuple[ContactMode, ...] = ("phone", "phone", "video", "in-person")


def _team() -> dict[str, Any]:
    team: dict[str, Any] = tomllib.loads(PRACTICE_PLAN.read_text(encoding="utf-8"))["team"]
    return team


def _of_patient(clinic: Clinic, kind: str, patient: str) -> list[Resource]:
    key = "patient" if kind == "Consent" else "subject"
    return [r for r in clinic.by_type.get(kind, []) if r[key]["reference"] == patient]


def _local(day: date, minute_of_day: int, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minute_of_day)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _place(
    rng: random.Random, minutes: tuple[int, ...], first: date, last: date
) -> list[tuple[date, int]]:
    """(day, minutes) of each contact on weekdays in [first, last] (any day if too few); one
    hour per contact from 9:00, so a care manager's contacts never overlap."""
    if first > last:
        return []  # enrolled after this month: in a larger clinic the plan's month may not fit
    days = [d for d in _days(first, last) if d.weekday() < 5]
    if len(days) < len(minutes):
        days = _days(first, last)
    return sorted(zip(sorted(rng.choice(days) for _ in minutes), minutes, strict=True))


def add_billing(clinic: Clinic, seed: int) -> None:
    """Initiating visits, care teams and care-management time (see the module docstring)."""
    team = _team()
    tz = ZoneInfo(tomllib.loads(PRACTICE_PLAN.read_text(encoding="utf-8"))["billing"]["timezone"])
    pcp = team["billing_practitioner"]
    consultant = team["psychiatric_consultant"]
    managers = {m["reference"]: m for m in team["care_managers"]}
    seen: dict[str, int] = {}
    for patient in clinic.by_type["Patient"]:
        scenario = patient["meta"]["tag"][0]["code"]
        instance = seen[scenario] = seen.get(scenario, -1) + 1
        ref = f"Patient/{patient['id']}"
        careplans = _of_patient(clinic, "CarePlan", ref)
        if not careplans and scenario not in TIME_PLANS:
            continue
        rng = random.Random(f"{seed}:billing:{patient['id']}")  # noqa: S311 - synthetic data
        screens = sorted(r["authored"] for r in _of_patient(clinic, "QuestionnaireResponse", ref))
        screen = date.fromisoformat(screens[-1] if not careplans else screens[0])
        code, minutes = E_M_CODE[rng.random() < 0.5]
        visit_start = _local(screen, 8 * 60 + 30 + 30 * rng.randint(0, 12), tz)
        clinic.add(
            {
                "resourceType": "Encounter",
                "id": f"em-{patient['id']}",
                "status": "finished",
                "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "type": [
                    {
                        "coding": [
                            {"system": CPT, "code": code, "display": "Office or other outpatient "
                             "visit, established patient"}
                        ],
                        "text": "Office visit (E/M), initiating visit",
                    }
                ],
                "subject": {"reference": ref},
                "participant": [{"individual": {"reference": pcp["reference"],
                                                "display": pcp["display"]}}],
                "period": {
                    "start": visit_start.isoformat(),
                    "end": (visit_start + timedelta(minutes=minutes)).isoformat(),
                },
            }
        )  # fmt: skip
        manager = managers[CARE_MANAGERS[int(patient["id"][1:]) % 2]]
        if careplans:
            manager = managers.get(careplans[0]["contributor"][0]["reference"], manager)
            clinic.add(
                {
                    "resourceType": "CareTeam",
                    "id": f"ct-{patient['id']}",
                    "status": "active",
                    "name": "Collaborative care team",
                    "subject": {"reference": ref},
                    "period": {"start": careplans[0]["period"]["start"]},
                    "participant": [
                        {
                            "role": [{"text": "Billing practitioner (PCP)"}],
                            "member": {"reference": pcp["reference"], "display": pcp["display"]},
                        },
                        {
                            "role": [{"text": "Behavioral health care manager"}],
                            "member": {
                                "reference": manager["reference"],
                                "display": manager["display"],
                            },
                        },
                        {
                            "role": [
                                {
                                    "coding": [
                                        {
                                            "system": SNOMED,
                                            "code": PSYCHIATRIST,
                                            "display": "Psychiatrist",
                                        }
                                    ],
                                    "text": "Psychiatric consultant",
                                }
                            ],
                            "member": {
                                "reference": consultant["reference"],
                                "display": consultant["display"],
                            },
                        },
                    ],
                }
            )
        plans = TIME_PLANS.get(scenario)
        if not plans:
            continue
        time_plan = plans[instance % len(plans)]
        consents = [c["dateTime"] for c in _of_patient(clinic, "Consent", ref)]
        enrolled = date.fromisoformat(careplans[0]["period"]["start"]) if careplans else None
        placed: list[tuple[date, int]] = []
        for month, contacts in time_plan.items():
            if month == "engage":  # after the screen, before consent (or within two weeks)
                last = date.fromisoformat(consents[0]) - timedelta(days=1) if consents else None
                placed += _place(rng, contacts, screen + timedelta(days=1),
                                 last or screen + timedelta(days=14))  # fmt: skip
                continue
            first = date.fromisoformat(f"{month}-01")
            last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            assert enrolled is not None, scenario
            placed += _place(rng, contacts, max(first, enrolled),
                             min(last, BILLING_MONTH_END.get(month, last)))  # fmt: skip
        slots: dict[date, int] = {}
        for n, (day, length) in enumerate(sorted(placed), start=1):
            slot = slots[day] = slots.get(day, -1) + 1
            start = _local(day, 9 * 60 + 60 * slot + 5 * rng.randint(0, 6), tz)
            ident = f"cm-{patient['id']}-{n:02d}"
            clinic.add(
                time_entry(
                    id=ident,
                    patient=ref,
                    clinician=manager["reference"],
                    start=start,
                    end=start + timedelta(minutes=length),
                    mode=rng.choice(_MODES),
                    identifier_system=TIME_ENTRY_SYSTEM,
                    identifier_value=ident,
                )
            )


def generate(patients: int = 66, seed: int = SEED) -> Clinic:
    clinic = Clinic(random.Random(seed))  # noqa: S311 - synthetic data, not security
    for index in range(patients):
        name, _, build = SCENARIOS[index % len(SCENARIOS)]
        ident = f"p{index:05d}"
        gender = "male" if name == "auditc-m3" else None
        gender = "female" if name in ("auditc-f3", "auditc-q1-only-f") else gender
        gender = gender or clinic.rng.choice(["female", "male"])
        clinic.add(
            {
                "resourceType": "Patient",
                "id": ident,
                "meta": {"tag": [{"system": "https://bhi-fhir.dev/fhir/scenario", "code": name}]},
                "gender": gender,
                "birthDate": (
                    f"{clinic.rng.randint(1945, 2004)}-0{clinic.rng.randint(1, 9)}"
                    f"-1{clinic.rng.randint(0, 9)}"
                ),
            }
        )
        build(clinic, f"Patient/{ident}", CARE_MANAGERS[index % 2])
    add_billing(clinic, seed)
    return clinic


def lines(resources: list[Resource]) -> Iterator[str]:
    for resource in resources:
        yield json.dumps(resource, separators=(",", ":"), ensure_ascii=False) + "\n"


def write(clinic: Clinic, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for kind in sorted(clinic.by_type):
        with (out / f"{kind}.ndjson").open("w", encoding="utf-8") as handle:
            handle.writelines(lines(clinic.by_type[kind]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=66)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "clinic")
    args = parser.parse_args()
    write(generate(args.patients, args.seed), args.out)


if __name__ == "__main__":
    main()
