"""CMS2: Preventive Care and Screening: Screening for Depression and Follow-Up Plan. Pure.

Follows the published FHIR CQL (cqframework/ecqm-content-qicore-2025
``input/cql/PCSDepressionScreenAndFollowUpFHIR.cql``):

- **Initial population = denominator**: age ≥ 12 at the start of the measurement period, and
  a *qualifying encounter*: a finished Encounter whose ``type`` is in "Encounter to Screen for
  Depression", "Physical Therapy Evaluation" or "Telephone Visits", its period within the
  measurement period (by day).
- **Denominator exclusion**: a bipolar disorder diagnosis (problem list or health concern)
  whose prevalence starts before a qualifying encounter.
- **Numerator** (by age at the start of the period: 12–16 adolescent screens, 17 either, 18+
  adult screens): the *most recent* screen dated 14 days or less on or before the start of a
  qualifying encounter is negative; or it is positive and a follow-up — an antidepressant
  order (MedicationRequest, status active/completed, intent order), a referral
  (ServiceRequest active/completed) or a follow-up intervention (Procedure completed), each in
  the age group's value set — is performed during that encounter or authored on its last day
  or up to 2 days after, within the measurement period.
- **Denominator exception**: a screen not done (Observation ``cancelled``, coded as the
  screening assessment) for "Depression screening declined" or a medical reason, issued during
  a qualifying encounter, with no screen of that age group.

A screen is either what the CQL reads — an Observation coded LOINC 73832-8 (adult) or
73831-0 (adolescent) with value SNOMED 428181000124104 positive / 428171000124102 negative —
or a depression instrument scored by bhi-fhir, positive by the instrument's own cut point
(CMS2 leaves positivity to the tool: ONC Jira CQM-4639,
https://oncprojectracking.healthit.gov/support/browse/CQM-4639). Which instrument is age-appropriate
is the practice's reading of the measure (the CQL keys it on the LOINC code the EHR chose):
PHQ-A (PHQ-9 Modified for Teens) is an adolescent tool, EPDS an adult one, PHQ-9 and PHQ-2
both (they are validated in adolescents as well, https://apal.arizona.edu/node/151).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from bhi_fhir.codes import LOINC, SNOMED
from bhi_fhir.instruments.screens import screen_source
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Outcome,
    PatientData,
    Period,
    age_at,
    condition_prevalence,
    conditions_in,
    day_of,
    days_back,
    days_on,
    encounter_days,
    fmt,
    has_code,
    ref_of,
    unique,
)
from bhi_fhir.measures.valuesets import any_coding_in, codings

__all__ = ["ADOLESCENT_SCREEN", "ADULT_SCREEN", "MEASURE_ID", "evaluate"]

MEASURE_ID: Final = "CMS2"
ADOLESCENT_SCREEN: Final = "73831-0"  # LOINC Adolescent depression screening assessment
ADULT_SCREEN: Final = "73832-8"  # LOINC Adult depression screening assessment
POSITIVE: Final = "428181000124104"  # SNOMED Depression screening positive (finding)
NEGATIVE: Final = "428171000124102"  # SNOMED Depression screening negative (finding)
DECLINED: Final = "720834000"  # SNOMED Depression screening declined (situation)
SCREEN_WINDOW_DAYS: Final = 14  # "14 days or less on or before day of start of" the encounter
FOLLOW_UP_DAYS: Final = 2  # "2 days or less on or after day of end of" the encounter

Group = Literal["adolescent", "adult"]
_QUALIFYING: Final = ("Encounter to Screen for Depression", "Physical Therapy Evaluation",
                      "Telephone Visits")
_GROUPS_OF_INSTRUMENT: Final[Mapping[str, tuple[Group, ...]]] = {
    "phqa": ("adolescent",),
    "phq9": ("adolescent", "adult"),
    "phq2": ("adolescent", "adult"),
    "epds": ("adult",),
}
_LABEL: Final = {"phqa": "PHQ-A", "phq9": "PHQ-9", "phq2": "PHQ-2", "epds": "EPDS"}
_FOLLOW_UP_SETS: Final[Mapping[Group, Mapping[str, str]]] = {
    "adult": {"MedicationRequest": "Adult Depression Medications",
              "ServiceRequest": "Referral for Adult Depression",
              "Procedure": "Follow Up for Adult Depression"},
    "adolescent": {"MedicationRequest": "Adolescent Depression Medications",
                   "ServiceRequest": "Referral for Adolescent Depression",
                   "Procedure": "Follow Up for Adolescent Depression"},
}
_NOT_DONE_EXTENSIONS: Final = ("notDoneReason", "event-statusReason")


@dataclass(frozen=True, slots=True)
class Screen:
    day: date
    positive: bool
    groups: tuple[Group, ...]
    ref: str | None
    label: str


@dataclass(frozen=True, slots=True)
class Visit:
    start: date
    end: date
    ref: str | None


def groups_for(age: int) -> tuple[Group, ...]:
    """Which screens count at ``age`` (at the start of the period): 12–16 adolescent, 17
    either, 18 and over adult."""
    if age >= 18:
        return ("adult",)
    if age == 17:
        return ("adolescent", "adult")
    return ("adolescent",)


def qualifying_visits(data: PatientData, period: Period) -> list[Visit]:
    visits = []
    for encounter in data.of_type("Encounter"):
        if encounter.get("status") != "finished":
            continue
        if not any_coding_in(encounter.get("type"), *_QUALIFYING):
            continue
        days = encounter_days(encounter)
        if days is None or days[0] not in period or days[1] not in period:
            continue
        visits.append(Visit(days[0], days[1], ref_of(encounter)))
    return sorted(visits, key=lambda v: (v.start, v.end, v.ref or ""))


def screens(data: PatientData) -> list[Screen]:
    """Every depression screen with a result: LOINC-coded screening Observations and the
    scored depression instruments."""
    found: list[Screen] = []
    for obs in data.of_type("Observation"):
        if obs.get("status") != "final":
            continue
        groups: tuple[Group, ...] = ()
        if has_code(obs.get("code"), LOINC, ADULT_SCREEN):
            groups = ("adult",)
        elif has_code(obs.get("code"), LOINC, ADOLESCENT_SCREEN):
            groups = ("adolescent",)
        if not groups:
            continue
        value = obs.get("valueCodeableConcept")
        positive = has_code(value, SNOMED, POSITIVE)
        if not positive and not has_code(value, SNOMED, NEGATIVE):
            continue  # "value is not null" and read as positive or negative
        effective = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start")
        day = day_of(effective)
        if day is not None:
            label = "adult screening" if groups == ("adult",) else "adolescent screening"
            found.append(Screen(day, positive, groups, ref_of(obs), label))
    for score in data.scores:
        groups = _GROUPS_OF_INSTRUMENT.get(score.instrument or "", ())
        day = day_of(score.authored)
        if not groups or not score.final or score.positive is None or day is None:
            continue
        ref = score.response_ref if (score.response_ref or "").count("/") == 1 else None
        found.append(Screen(day, score.positive, groups, screen_source(score) or ref,
                            _LABEL[score.instrument or ""]))
    return sorted(found, key=lambda s: (s.day, s.ref or ""))


def _follow_ups(data: PatientData, group: Group) -> list[tuple[Mapping[str, Any], str]]:
    """Follow-up interventions of the age group's value sets, with their resource type."""
    sets = _FOLLOW_UP_SETS[group]
    found: list[tuple[Mapping[str, Any], str]] = []
    for resource in data.of_type("MedicationRequest"):
        if (resource.get("status") in ("active", "completed") and resource.get("intent") == "order"
                and any_coding_in(resource.get("medicationCodeableConcept"),
                                  sets["MedicationRequest"])):
            found.append((resource, "antidepressant order"))
    for resource in data.of_type("ServiceRequest"):
        if (resource.get("status") in ("active", "completed")
                and any_coding_in(resource.get("code"), sets["ServiceRequest"])):
            found.append((resource, "referral"))
    for resource in data.of_type("Procedure"):
        if (resource.get("status") == "completed"
                and any_coding_in(resource.get("code"), sets["Procedure"])):
            found.append((resource, "follow-up"))
    return found


def _follow_up_day(resource: Mapping[str, Any]) -> tuple[date | None, date | None]:
    """(performed start, authoredOn) by day."""
    performed = resource.get("performedDateTime") or (
        resource.get("performedPeriod") or {}).get("start")
    return day_of(performed), day_of(resource.get("authoredOn"))


def _followed_up(
    visit: Visit, follow_ups: Sequence[tuple[Mapping[str, Any], str]], period: Period
) -> Mapping[str, Any] | None:
    for resource, _ in follow_ups:
        performed, authored = _follow_up_day(resource)
        during = performed is not None and visit.start <= performed <= visit.end
        after = authored is not None and visit.end <= authored <= days_on(
            visit.end, FOLLOW_UP_DAYS)
        when = performed or authored
        if (during or after) and when in period:
            return resource
    return None


def _declined(data: PatientData, visits: Sequence[Visit], group: Group) -> Mapping[str, Any] | None:
    code = ADULT_SCREEN if group == "adult" else ADOLESCENT_SCREEN
    for obs in data.of_type("Observation"):
        if obs.get("status") != "cancelled" or not has_code(obs.get("code"), LOINC, code):
            continue
        reasons = [ext.get("valueCodeableConcept") for ext in obs.get("extension") or []
                   if isinstance(ext, Mapping)
                   and str(ext.get("url", "")).endswith(_NOT_DONE_EXTENSIONS)]
        if not any(has_code(r, SNOMED, DECLINED) or any_coding_in(r, "Medical Reason")
                   for r in reasons):
            continue
        issued = day_of(obs.get("issued"))
        if issued is not None and any(v.start <= issued <= v.end for v in visits):
            return obs
    return None


def evaluate(data: PatientData, period: Period) -> Outcome | None:
    """The patient's CMS2 outcome for ``period``; None outside the initial population."""
    age = age_at(data.birth_date, period.start)
    visits = qualifying_visits(data, period)
    if age is None or age < 12 or not visits:
        return None
    pops = {INITIAL_POPULATION, DENOMINATOR}
    evaluated: list[str | None] = [v.ref for v in visits]
    notes = [f"age {age} at {fmt(period.start)}; {len(visits)} qualifying visit(s)"]

    bipolar = [
        c for c in conditions_in(data, "Bipolar Disorder")
        if _problem_or_concern(c)
        and (start := condition_prevalence(c)[0]) is not None
        and any(start < v.start for v in visits)
    ]
    if bipolar:
        pops.add(DENOMINATOR_EXCLUSION)
        evaluated += [ref_of(c) for c in bipolar]
        notes.append("bipolar disorder diagnosed before a qualifying visit")
        return Outcome(MEASURE_ID, data.patient, frozenset(pops), None, unique(evaluated),
                       None, tuple(notes))

    all_screens = screens(data)
    latest_any: Screen | None = None
    gap: str | None = None
    for group in groups_for(age):
        in_window = [
            s for s in all_screens
            if group in s.groups
            and any(days_back(v.start, SCREEN_WINDOW_DAYS) <= s.day <= v.start for v in visits)
        ]
        if not in_window:
            continue
        latest = in_window[-1]
        latest_any = latest if latest_any is None or latest.day >= latest_any.day else latest_any
        evaluated.append(latest.ref)
        if not latest.positive:
            pops.add(NUMERATOR)
            notes.append(f"most recent screen negative ({latest.label} on {fmt(latest.day)})")
            break
        follow_ups = _follow_ups(data, group)
        for visit in visits:
            if not days_back(visit.start, SCREEN_WINDOW_DAYS) <= latest.day <= visit.start:
                continue
            done = _followed_up(visit, follow_ups, period)
            if done is not None:
                pops.add(NUMERATOR)
                evaluated += [visit.ref, ref_of(done)]
                notes.append(f"positive {latest.label} on {fmt(latest.day)}, follow-up "
                             f"{done.get('resourceType')} for the visit of {fmt(visit.start)}")
                break
        if NUMERATOR in pops:
            break
        visit = next(v for v in reversed(visits)
                     if days_back(v.start, SCREEN_WINDOW_DAYS) <= latest.day <= v.start)
        gap = (f"positive {latest.label} on {fmt(latest.day)}: no follow-up plan (antidepressant "
               f"order, referral or follow-up intervention) on the visit of {fmt(visit.start)} "
               f"or by {fmt(days_on(visit.end, FOLLOW_UP_DAYS))}")

    if NUMERATOR not in pops and latest_any is None:
        for group in groups_for(age):
            declined = _declined(data, visits, group)
            if declined is not None:
                pops.add(DENOMINATOR_EXCEPTION)
                evaluated.append(ref_of(declined))
                notes.append("screening not done for a patient or medical reason")
                break
        if DENOMINATOR_EXCEPTION not in pops:
            last = visits[-1]
            tools = "PHQ-A, PHQ-9 or PHQ-2" if age < 18 else "PHQ-9 or PHQ-2"
            gap = (f"no depression screen ({tools}) in the {SCREEN_WINDOW_DAYS} days up to a "
                   f"qualifying visit (last visit {fmt(last.start)}): screen at the next visit")
    return Outcome(MEASURE_ID, data.patient, frozenset(pops), None, unique(evaluated),
                   gap if NUMERATOR not in pops and DENOMINATOR_EXCEPTION not in pops else None,
                   tuple(notes))


def _problem_or_concern(condition: Mapping[str, Any]) -> bool:
    """A problem-list item or health concern (the CQL reads ConditionProblemsHealthConcerns)."""
    return any(c.get("code") in ("problem-list-item", "health-concern")
               for c in codings(condition.get("category")))
