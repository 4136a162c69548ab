"""HEDIS DSF-E: Depression Screening and Follow-Up for Adolescents and Adults. Pure.

From NCQA's public description (https://www.ncqa.org/hedis/measures/depression-screening-and-
follow-up-for-adolescents-and-adults/) and the BCBSND DSF-E tip sheet (https://www.bcbsnd.com/
providers/programs/bluealliance-and-bluealliance-care-plus/hedis-tip-sheets/hedis-tip-sheet-
search/dsf-e); NCQA's own specification and value sets are not public, so where it names a value
set this module says what stands in for it.

- **Initial population = denominator**: age 12 or older on January 1 of the measurement period,
  and — a practice's stand-in for the health plan's enrolment — a finished Encounter during it
  (:data:`ATTRIBUTION`). Strata by age on January 1: 12–17, 18–64, 65+.
- **Exclusions**: hospice during the period (HEDIS General Guideline 17, "Members in hospice"),
  death by its end (General Guideline 18, "Deceased members"), bipolar disorder during the year
  before the period (HEDIS 2020 DSF summary of changes: the bipolar exclusion is "during the
  year prior to the Measurement Period").
- **Rate 1, screening**: a depression screen with a result from January 1 to December 1
  (:data:`SCREEN_LAST_DAY`): PHQ-9, PHQ-2, PHQ-9M (PHQ-A, 12–17 only) or EPDS, from a
  QuestionnaireResponse or a screening Observation (the one scorer reads both).
- **Rate 2, follow-up on a positive screen**: the patients whose *first* positive screen in
  that window is the index; follow-up on that day or up to 30 days after it
  (:data:`FOLLOW_UP_DAYS`): a visit with a depression or behavioral-health diagnosis,
  depression case management, a behavioral-health encounter, an antidepressant dispensed, or —
  after a positive brief screen (PHQ-2) — a negative full-length instrument the same day.

Positive by HEDIS's thresholds (:data:`POSITIVE_AT`), not the practice's cut points: a total
at or above the threshold; an incomplete response by its bounds (positive when its lowest
possible total reaches the threshold, negative when its highest cannot), else no result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT, CPT, HCPCS, ICD10CM
from bhi_fhir.instruments.result import Score
from bhi_fhir.instruments.screens import screen_source
from bhi_fhir.measures.cms159 import died_by, hospice_or_palliative
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Outcome,
    PatientData,
    Period,
    age_at,
    combine,
    condition_prevalence,
    conditions_in,
    day_of,
    days_on,
    encounter_days,
    fmt,
    has_code,
    overlaps,
    ref_of,
    unique,
)
from bhi_fhir.measures.valuesets import any_coding_in, codes, codings

__all__ = [
    "FOLLOW_UP", "FOLLOW_UP_DAYS", "MEASURE_ID", "POSITIVE_AT", "RATES", "SCREENING", "STRATA",
    "Screen", "evaluate", "screens", "stratum_of",
]

MEASURE_ID: Final = "DSF-E"
SCREENING: Final = "screening"  # rate 1
FOLLOW_UP: Final = "follow-up"  # rate 2
RATES: Final = (SCREENING, FOLLOW_UP)
STRATA: Final = ("12-17", "18-64", "65+")
MINIMUM_AGE: Final = 12
# Rate 1 counts screens from January 1 to December 1 of the period (NCQA; BCBSND tip sheet),
# so that a positive screen's 30 days of follow-up fall within the period.
SCREEN_LAST_DAY: Final = (12, 1)
# "Follow-up care within 30 days of a positive depression screen finding": the screen's day
# (day 0) to day 30, both included.
FOLLOW_UP_DAYS: Final = 30
# HEDIS MY2025 positive thresholds, as an open-source MY2025 implementation codes them [M];
# only the instruments bhi-fhir scores (the others' LOINC codes are not verified, so their
# Observations are not read).
POSITIVE_AT: Final[Mapping[str, int]] = {"phq9": 10, "phqa": 10, "phq2": 3, "epds": 10}
# The brief instrument (BCBSND: "Brief screening instrument. All other instruments are
# full-length."); a negative full-length instrument the same day follows a positive brief one.
BRIEF: Final = frozenset({"phq2"})
# The PHQ-9 Modified for Teens is an adolescent instrument (NIMH ASQ toolkit).
ADOLESCENT_ONLY: Final = frozenset({"phqa"})
_LABEL: Final = {"phq9": "PHQ-9", "phqa": "PHQ-A", "phq2": "PHQ-2", "epds": "EPDS"}
# Who the practice measures: HEDIS counts a plan's enrolled members; a practice has no
# enrolment, so a patient is its own when seen (a finished Encounter) during the period.
ATTRIBUTION: Final = "a finished Encounter during the measurement period"
# HEDIS counts an antidepressant *dispensed* (pharmacy data). A practice's record holds the
# order and often no dispense, so an order (MedicationRequest active/completed, intent order)
# counts as well; set False to count MedicationDispense only.
ORDERS_COUNT_AS_DISPENSED: Final = True
# Stand-ins for HEDIS value sets that are not public:
# - "Outpatient"/"Telephone Visits"/"Online Assessments" → the eCQM value sets "Contact or Office
#   Visit" and "Telephone Visits";
# - "Mental Health Diagnosis"/"Depression" → the eCQM "Major Depression Including Remission" and
#   "Dysthymia", or any ICD-10-CM code of chapter 5 (F01–F99, mental and behavioural disorders);
# - "Depression Case Management Encounter" → the CoCM and general BHI care-management codes
#   (CPT 99492, 99493, 99494, 99484; HCPCS G2214, G0323), a care manager's contact as bhi-fhir
#   records it (Encounter.type bhi-activity ``care-management-contact``) or a procedure in the
#   eCQM "Follow Up for Adult/Adolescent Depression" value sets;
# - "Behavioral Health Encounter" → the psychiatric evaluation and psychotherapy codes (CPT 908xx)
#   the eCQM visit value sets hold;
# - "Antidepressant Medications" → the eCQM "Adult Depression Medications" and "Adolescent
#   Depression Medications" (RxNorm).
_VISITS: Final = ("Contact or Office Visit", "Telephone Visits")
_DEPRESSION: Final = ("Major Depression Including Remission", "Dysthymia")
_CARE_MANAGEMENT: Final = frozenset({"99492", "99493", "99494", "99484", "G2214", "G0323"})
_CARE_MANAGEMENT_PROCEDURES: Final = ("Follow Up for Adult Depression",
                                      "Follow Up for Adolescent Depression")
_ANTIDEPRESSANTS: Final = ("Adult Depression Medications", "Adolescent Depression Medications")


def _psychiatric_codes() -> frozenset[str]:
    found = set()
    for name in ("Contact or Office Visit", "Encounter to Screen for Depression"):
        for key in codes(name):
            system, code = key.split("|", 1)
            if system.endswith("ama-assn.org/go/cpt") and code.startswith("908"):
                found.add(code)
    return frozenset(found)


_PSYCHIATRIC: Final = _psychiatric_codes()


@dataclass(frozen=True, slots=True)
class Screen:
    day: date
    instrument: str
    positive: bool
    total: int | None
    ref: str | None

    @property
    def label(self) -> str:
        name = _LABEL.get(self.instrument, self.instrument)
        return f"{name} {self.total}" if self.total is not None else name

    @property
    def brief(self) -> bool:
        return self.instrument in BRIEF


def stratum_of(age: int) -> str:
    return STRATA[0] if age <= 17 else STRATA[1] if age <= 64 else STRATA[2]


def _positive(score: Score) -> bool | None:
    threshold = POSITIVE_AT.get(score.instrument or "")
    if threshold is None or score.bounds is None:
        return None
    low, high = score.bounds
    if low >= threshold:
        return True
    if high < threshold:
        return False
    return None


def screens(data: PatientData, age: int) -> list[Screen]:
    """The patient's depression screens with a result, oldest first (``age`` on January 1
    decides whether the PHQ-A counts)."""
    found = []
    for score in data.scores:
        day = day_of(score.authored)
        if day is None or not score.final or score.instrument not in POSITIVE_AT:
            continue
        if score.instrument in ADOLESCENT_ONLY and age > 17:
            continue
        positive = _positive(score)
        if positive is None:
            continue
        ref = screen_source(score) or (
            score.response_ref if (score.response_ref or "").count("/") == 1 else None)
        found.append(Screen(day, str(score.instrument), positive, score.total, ref))
    return sorted(found, key=lambda s: (s.day, s.ref or ""))


def _finished_encounters(data: PatientData) -> list[tuple[date, date, Mapping[str, Any]]]:
    found = []
    for encounter in data.of_type("Encounter"):
        days = encounter_days(encounter)
        if encounter.get("status") == "finished" and days is not None:
            found.append((days[0], days[1], encounter))
    return sorted(found, key=lambda e: (e[0], e[1], str(e[2].get("id", ""))))


def _mental_health_code(concept: object) -> bool:
    if any_coding_in(concept, *_DEPRESSION):
        return True
    return any(c.get("system") == ICD10CM and str(c.get("code", ""))[:1] == "F"
               for c in codings(concept))


def _diagnosed_at(data: PatientData, encounter: Mapping[str, Any]) -> bool:
    """The encounter carries a depression or behavioral-health diagnosis: its reasonCode, a
    Condition it names (diagnosis, reasonReference) or a Condition recorded for it."""
    if _mental_health_code(encounter.get("reasonCode")):
        return True
    named = {str(d.get("condition", {}).get("reference", "")) for d in
             encounter.get("diagnosis") or [] if isinstance(d, Mapping)}
    named |= {str(r.get("reference", "")) for r in encounter.get("reasonReference") or []
              if isinstance(r, Mapping)}
    own = ref_of(encounter)
    for condition in data.of_type("Condition"):
        ref = ref_of(condition)
        linked = (condition.get("encounter") or {}).get("reference")
        if (ref in named or (own is not None and linked == own)) and _mental_health_code(
                condition.get("code")):
            return True
    return False


def _code_in(concept: object, wanted: frozenset[str]) -> bool:
    return any(c.get("system") in (CPT, HCPCS, "http://www.cms.gov/Medicare/Coding/"
                                   "HCPCSReleaseCodeSets") and c.get("code") in wanted
               for c in codings(concept))


def _performed(resource: Mapping[str, Any]) -> date | None:
    return day_of(resource.get("performedDateTime") or (
        resource.get("performedPeriod") or {}).get("start"))


def _dispensed(resource: Mapping[str, Any]) -> date | None:
    return day_of(resource.get("whenHandedOver") or resource.get("whenPrepared"))


def follow_up(data: PatientData, index: Screen, all_screens: list[Screen]
              ) -> tuple[str, Mapping[str, Any] | Screen] | None:
    """The first follow-up of a positive ``index`` screen, from its day to day
    :data:`FOLLOW_UP_DAYS`: what it was and the resource (or screen) that shows it."""
    low, high = index.day, days_on(index.day, FOLLOW_UP_DAYS)
    found: list[tuple[date, str, Mapping[str, Any] | Screen]] = []
    if index.brief:
        for screen in all_screens:
            if screen.day == index.day and not screen.brief and not screen.positive:
                found.append((screen.day, f"negative {screen.label} the same day", screen))
    for start, _, encounter in _finished_encounters(data):
        if not low <= start <= high:
            continue
        kind = encounter.get("type")
        if _code_in(kind, _CARE_MANAGEMENT) or has_code(kind, BHI_ACTIVITY,
                                                         CARE_MANAGEMENT_CONTACT):
            found.append((start, "depression care management", encounter))
        elif _code_in(kind, _PSYCHIATRIC):
            found.append((start, "behavioral-health visit", encounter))
        elif any_coding_in(kind, *_VISITS) and _diagnosed_at(data, encounter):
            found.append((start, "visit with a depression or behavioral-health diagnosis",
                          encounter))
    for procedure in data.of_type("Procedure"):
        day = _performed(procedure)
        if (procedure.get("status") == "completed" and day is not None and low <= day <= high
                and (_code_in(procedure.get("code"), _CARE_MANAGEMENT)
                     or any_coding_in(procedure.get("code"), *_CARE_MANAGEMENT_PROCEDURES))):
            found.append((day, "depression care management", procedure))
    for dispense in data.of_type("MedicationDispense"):
        day = _dispensed(dispense)
        if (dispense.get("status") == "completed" and day is not None and low <= day <= high
                and any_coding_in(dispense.get("medicationCodeableConcept"), *_ANTIDEPRESSANTS)):
            found.append((day, "antidepressant dispensed", dispense))
    if ORDERS_COUNT_AS_DISPENSED:
        for order in data.of_type("MedicationRequest"):
            day = day_of(order.get("authoredOn"))
            if (order.get("status") in ("active", "completed") and order.get("intent") == "order"
                    and day is not None and low <= day <= high
                    and any_coding_in(order.get("medicationCodeableConcept"),
                                      *_ANTIDEPRESSANTS)):
                found.append((day, "antidepressant ordered", order))
    if not found:
        return None
    first = min(found, key=lambda f: f[0])
    return first[1], first[2]


def _excluded(data: PatientData, period: Period) -> tuple[str, str | None] | None:
    care = hospice_or_palliative(data, period.start, period.end, palliative=False)
    if care is not None:
        return care[0], ref_of(care[1])
    if died_by(data, period.end):
        return "patient died", data.patient
    prior = (date(period.start.year - 1, 1, 1), date(period.start.year - 1, 12, 31))
    for condition in conditions_in(data, "Bipolar Disorder"):
        if overlaps(condition_prevalence(condition), prior):
            return "bipolar disorder in the year before the period", ref_of(condition)
    return None


def evaluate(data: PatientData, period: Period) -> Outcome | None:
    """The patient's DSF-E outcome for ``period`` (rates in ``Outcome.rates``: ``screening``
    and, after a positive screen, ``follow-up``); None outside the initial population."""
    age = age_at(data.birth_date, period.start)
    if age is None or age < MINIMUM_AGE:
        return None
    seen = [e for e in _finished_encounters(data)
            if overlaps((e[0], e[1]), (period.start, period.end))]
    if not seen:
        return None
    stratum = stratum_of(age)
    base = {INITIAL_POPULATION, DENOMINATOR}
    visit_refs = [ref_of(seen[-1][2])]
    last_day = date(period.start.year, *SCREEN_LAST_DAY)
    all_screens = screens(data, age)
    in_window = [s for s in all_screens if period.start <= s.day <= last_day]
    positives = [s for s in in_window if s.positive]
    rates: dict[str, Outcome] = {}

    excluded = _excluded(data, period)
    if excluded is not None:
        why, ref = excluded
        pops = frozenset(base | {DENOMINATOR_EXCLUSION})
        note = (f"excluded: {why}",)
        rates[SCREENING] = Outcome(MEASURE_ID, data.patient, pops, stratum,
                                   unique([*visit_refs, ref]), None, note)
        if positives:
            rates[FOLLOW_UP] = Outcome(MEASURE_ID, data.patient, pops, stratum,
                                       unique([positives[0].ref, ref]), None, note)
        return combine(MEASURE_ID, data.patient, rates, stratum)

    if in_window:
        last = in_window[-1]
        rates[SCREENING] = Outcome(
            MEASURE_ID, data.patient, frozenset(base | {NUMERATOR}), stratum,
            unique([*visit_refs, *(s.ref for s in in_window)]), None,
            (f"screened: {last.label} on {fmt(last.day)}",))
    else:
        tools = "PHQ-9, PHQ-A, PHQ-2 or EPDS" if age <= 17 else "PHQ-9, PHQ-2 or EPDS"
        rates[SCREENING] = Outcome(
            MEASURE_ID, data.patient, frozenset(base), stratum, unique(visit_refs),
            f"no depression screen ({tools}) between {fmt(period.start)} and {fmt(last_day)}: "
            "screen at the next visit, or by phone or portal", ())

    if positives:
        index = positives[0]
        done = follow_up(data, index, all_screens)
        deadline = days_on(index.day, FOLLOW_UP_DAYS)
        if done is not None:
            kind, evidence = done
            ref = evidence.ref if isinstance(evidence, Screen) else ref_of(evidence)
            rates[FOLLOW_UP] = Outcome(
                MEASURE_ID, data.patient, frozenset(base | {NUMERATOR}), stratum,
                unique([index.ref, ref]), None,
                (f"positive {index.label} on {fmt(index.day)}, followed up: {kind}",))
        else:
            same_day = (", or a negative PHQ-9 the same day" if index.brief else "")
            rates[FOLLOW_UP] = Outcome(
                MEASURE_ID, data.patient, frozenset(base), stratum, unique([index.ref]),
                f"positive {index.label} on {fmt(index.day)}: no follow-up (a visit with a "
                "depression or behavioral-health diagnosis, care management, a behavioral-"
                f"health visit or an antidepressant{same_day}) by {fmt(deadline)}", ())
    return combine(MEASURE_ID, data.patient, rates, stratum,
                   {"screens": len(in_window), "firstPositive": fmt(positives[0].day)}
                   if positives else {"screens": len(in_window)})
