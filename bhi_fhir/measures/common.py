"""What every measure reads from a patient's FHIR data, and what it decides. Pure.

Dates are compared by calendar day ("during day of" in the measures' CQL), the day as written
(the first ten characters of a FHIR date/dateTime). Screens come from the one scorer
(:func:`bhi_fhir.instruments.screens.screening_scores`): QuestionnaireResponses and screening
Observations alike, one Score per screening event.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Literal

from bhi_fhir import fhirjson
from bhi_fhir.fhirjson import Resource, day_range
from bhi_fhir.fhirjson import day as day_of  # the day a date/dateTime is written on
from bhi_fhir.instruments.result import Score
from bhi_fhir.measures.valuesets import any_coding_in, codings

__all__ = [
    "DENOMINATOR",
    "DENOMINATOR_EXCEPTION",
    "DENOMINATOR_EXCLUSION",
    "INITIAL_POPULATION",
    "NUMERATOR",
    "POPULATIONS",
    "Outcome",
    "PatientData",
    "Period",
    "add_months",
    "age_at",
    "combine",
    "condition_is_active",
    "condition_is_confirmed",
    "condition_prevalence",
    "conditions_in",
    "day_of",
    "days_back",
    "days_on",
    "encounter_days",
    "fmt",
    "has_code",
    "overlaps",
    "ref_of",
    "unique",
]


# MeasureReport.group.population codes (http://terminology.hl7.org/CodeSystem/measure-population)
INITIAL_POPULATION: Final = "initial-population"
DENOMINATOR: Final = "denominator"
DENOMINATOR_EXCLUSION: Final = "denominator-exclusion"
DENOMINATOR_EXCEPTION: Final = "denominator-exception"
NUMERATOR: Final = "numerator"
POPULATIONS: Final = (
    INITIAL_POPULATION, DENOMINATOR, DENOMINATOR_EXCLUSION, DENOMINATOR_EXCEPTION, NUMERATOR,
)
Population = Literal[
    "initial-population", "denominator", "denominator-exclusion", "denominator-exception",
    "numerator",
]


@dataclass(frozen=True, slots=True)
class Period:
    """A measurement period, both ends included (the CQL's ``Interval[start, end]`` by day)."""

    start: date
    end: date

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(date(year, 1, 1), date(year, 12, 31))

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    @property
    def label(self) -> str:
        if (self.start.month, self.start.day, self.end.month, self.end.day) == (1, 1, 12, 31) \
                and self.start.year == self.end.year:
            return str(self.start.year)
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True, slots=True)
class PatientData:
    """One patient's resources and their screens."""

    patient: str  # "Patient/<id>"
    resources: Sequence[Resource]
    scores: Sequence[Score] = ()

    @property
    def record(self) -> Resource | None:
        own = [r for r in self.resources if r.get("resourceType") == "Patient"]
        for resource in own:
            if fhirjson.patient_of(resource) == self.patient:
                return resource
        return own[0] if own else None

    def of_type(self, *kinds: str) -> list[Resource]:
        return [r for r in self.resources if r.get("resourceType") in kinds]

    @property
    def birth_date(self) -> date | None:
        record = self.record
        return day_of(record.get("birthDate")) if record is not None else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one measure decided for one patient."""

    measure: str
    patient: str
    populations: frozenset[str]
    stratum: str | None = None
    evaluated: tuple[str, ...] = ()  # Type/id of the resources that decided it
    reason: str | None = None  # why not in the numerator (a care gap), or None
    notes: tuple[str, ...] = ()  # what decided each population, for the report
    extra: Mapping[str, Any] = field(default_factory=dict)
    # A measure with several rates (FHIR Measure groups: DSF-E, DMS-E, DRR-E): the patient's
    # outcome per rate, by group id; a rate the patient is not in is absent. Empty for a
    # one-rate measure (CMS2, CMS159).
    rates: Mapping[str, Outcome] = field(default_factory=dict)

    def has(self, population: str) -> bool:
        return population in self.populations

    @property
    def gap(self) -> bool:
        """In the denominator, not excluded or excepted, and not in the numerator."""
        return (self.has(DENOMINATOR) and not self.has(DENOMINATOR_EXCLUSION)
                and not self.has(DENOMINATOR_EXCEPTION) and not self.has(NUMERATOR))


def combine(measure: str, patient: str, rates: Mapping[str, Outcome],
            stratum: str | None = None, extra: Mapping[str, Any] | None = None) -> Outcome:
    """One outcome for a several-rate measure, over its rates: in a population when in it for
    any rate, in the numerator only when in it for every rate whose denominator (not excluded
    or excepted) holds the patient; the reasons of the rates it missed, each named."""
    pops = {p for o in rates.values() for p in o.populations if p != NUMERATOR}
    counted = [o for o in rates.values() if o.has(DENOMINATOR)
               and not o.has(DENOMINATOR_EXCLUSION) and not o.has(DENOMINATOR_EXCEPTION)]
    if counted and all(o.has(NUMERATOR) for o in counted):
        pops.add(NUMERATOR)
    reasons = [f"{name}: {o.reason}" for name, o in rates.items() if o.reason]
    return Outcome(measure, patient, frozenset(pops), stratum,
                   unique(r for o in rates.values() for r in o.evaluated),
                   "; ".join(reasons) or None,
                   tuple(f"{name}: {n}" for name, o in rates.items() for n in o.notes),
                   dict(extra or {}), dict(rates))


def _partial_start(value: object) -> date | None:
    """The first day a FHIR date/dateTime of any precision can mean."""
    days = day_range(value)
    return days[0] if days else None


def _partial_end(value: object) -> date | None:
    """The last day a FHIR date/dateTime of any precision can mean."""
    days = day_range(value)
    return days[1] if days else None


def fmt(day: date) -> str:
    return day.isoformat()


def add_months(day: date, months: int) -> date:
    """CQL date + N months: the same day of the month, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def age_at(birth: date | None, day: date) -> int | None:
    """Whole years from ``birth`` to ``day`` (CQL AgeInYearsAt)."""
    if birth is None:
        return None
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def ref_of(resource: Resource) -> str | None:
    kind, rid = resource.get("resourceType"), resource.get("id")
    return f"{kind}/{rid}" if isinstance(kind, str) and isinstance(rid, str) and rid else None


def has_code(concepts: object, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in codings(concepts))


def encounter_days(encounter: Resource) -> tuple[date, date] | None:
    """First and last day of Encounter.period; a finished Encounter without an end ends the
    day it started."""
    period = encounter.get("period")
    if not isinstance(period, Mapping):
        return None
    start = day_of(period.get("start"))
    end = day_of(period.get("end")) or start
    if start is None or end is None:
        return None
    return start, max(start, end)


_ACTIVE: Final = frozenset({"active", "recurrence", "relapse"})
_CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _status_codes(concept: object, system: str) -> set[str]:
    return {str(c.get("code")) for c in codings(concept)
            if c.get("system") in (system, None) and isinstance(c.get("code"), str)}


def condition_is_active(condition: Resource) -> bool:
    """clinicalStatus active, recurrence or relapse (QICoreCommon ``isActive``)."""
    return bool(_status_codes(condition.get("clinicalStatus"), _CONDITION_CLINICAL) & _ACTIVE)


def condition_is_confirmed(condition: Resource) -> bool:
    """verificationStatus confirmed (QICoreCommon ``isConfirmedActiveDiagnosis``, with
    ``isActive``)."""
    return "confirmed" in _status_codes(condition.get("verificationStatus"),
                                        _CONDITION_VERIFICATION)


def condition_prevalence(condition: Resource) -> tuple[date | None, date | None]:
    """Onset to abatement by day (QICoreCommon ``prevalenceInterval``): an active condition
    has no end; None at an end is open. Without an onset the condition starts the day it was
    recorded (a problem-list entry often carries only ``recordedDate``)."""
    onset: object = condition.get("onsetDateTime")
    if onset is None and isinstance(condition.get("onsetPeriod"), Mapping):
        onset = condition["onsetPeriod"].get("start")
    start = _partial_start(onset) if onset is not None else day_of(condition.get("recordedDate"))
    if condition_is_active(condition):
        return start, None
    abatement: object = condition.get("abatementDateTime")
    if abatement is None and isinstance(condition.get("abatementPeriod"), Mapping):
        abatement = condition["abatementPeriod"].get("end")
    return start, _partial_end(abatement) if abatement is not None else None


def conditions_in(data: PatientData, *value_sets: str) -> list[Resource]:
    """The patient's Conditions coded in one of ``value_sets`` (entered in error or refuted
    ones are no diagnosis)."""
    found = []
    for condition in data.of_type("Condition"):
        if _status_codes(condition.get("verificationStatus"), _CONDITION_VERIFICATION) & {
            "entered-in-error", "refuted"
        }:
            continue
        if any_coding_in(condition.get("code"), *value_sets):
            found.append(condition)
    return found


def overlaps(a: tuple[date | None, date | None], b: tuple[date, date]) -> bool:
    """Two day intervals share a day; None is an open end."""
    start, end = a
    return (start is None or start <= b[1]) and (end is None or end >= b[0])


def days_back(day: date, days: int) -> date:
    return day - timedelta(days=days)


def days_on(day: date, days: int) -> date:
    return day + timedelta(days=days)


def unique(refs: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r for r in refs if r))
