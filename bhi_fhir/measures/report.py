"""Measure outcomes → FHIR R4 MeasureReports, and their idempotent write. Pure.

Three report types (https://hl7.org/fhir/R4/measurereport.html):

- ``individual``: one per patient in the initial population, ``subject`` the patient, each
  population counted 0 or 1, ``evaluatedResource`` the resources that decided it; a patient
  left out of the numerator carries the reason on the numerator population (extension
  ``CARE_GAP_REASON``, a string a care manager can act on);
- ``subject-list``: each population's patients as a contained ``List``
  (``group.population.subjectResults``);
- ``summary``: counts per population and the rate, overall and per stratum. The rate is the
  proportion measure's performance rate: numerator / (denominator − exclusions − exceptions).

A measure with several rates (DSF-E, DMS-E, DRR-E) has one ``group`` per rate, in every
report type, identified by its ``code`` (system ``MEASURE_GROUP``, the rate's id) as in the
``Measure``; in a patient's individual report a rate they are not in counts 0. A group
whose denominator is empty (all excluded, or a rate nobody reached) has no rate: its
``measureScore.value`` carries the data-absent-reason ``not-a-number`` instead of a decimal.

Each report has a deterministic business identifier (system ``BHI_IDENTIFIER``, value
``measure-report:<measure>:<period>:<type>[:<patient>]``), so a re-run finds what an earlier
run wrote: :func:`plan_writes` creates what the server lacks (conditional create on the
identifier), updates what changed (versioned ``ifMatch``), and leaves the rest alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from bhi_fhir.codes import BHI_BASE, BHI_IDENTIFIER
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import etag
from bhi_fhir.measures import cms2, cms159, dmse, drre, dsfe
from bhi_fhir.measures.common import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    NUMERATOR,
    POPULATIONS,
    Outcome,
    PatientData,
    Period,
)
from bhi_fhir.timeline import full_url_for
from bhi_fhir.workflow.plan import identifier_condition, transaction_entry

__all__ = [
    "CARE_GAP_REASON",
    "MEASURES",
    "MEASURE_GROUP",
    "MeasureDef",
    "Write",
    "groups_of",
    "individual_report",
    "plan_writes",
    "rate",
    "rated",
    "report_identifier",
    "subject_list_report",
    "summary_report",
]

CARE_GAP_REASON: Final = f"{BHI_BASE}/StructureDefinition/care-gap-reason"
_POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
_STRATIFIER_AGE: Final = "age-group"
_NO_EXCEPTION: Final = tuple(p for p in POPULATIONS if p != DENOMINATOR_EXCEPTION)
_DATA_ABSENT: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
MEASURE_GROUP: Final = f"{BHI_BASE}/CodeSystem/measure-group"  # a rate's id in its Measure


@dataclass(frozen=True, slots=True)
class MeasureDef:
    id: str
    title: str
    evaluate: Callable[[PatientData, Period], Outcome | None]
    strata: tuple[str, ...] = ()
    # The populations the published measure defines (CMS159 has no exceptions).
    populations: tuple[str, ...] = POPULATIONS
    # A several-rate measure's rates (group id, title), each decided in ``Outcome.rates``.
    groups: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"{BHI_BASE}/Measure/{self.id}"


MEASURES: Final[Mapping[str, MeasureDef]] = {
    m.id: m
    for m in (
        MeasureDef(cms2.MEASURE_ID, "Screening for Depression and Follow-Up Plan",
                   cms2.evaluate),
        MeasureDef(cms159.MEASURE_ID, "Depression Remission at Twelve Months",
                   cms159.evaluate, cms159.STRATA,
                   tuple(p for p in POPULATIONS if p != DENOMINATOR_EXCEPTION)),
        MeasureDef(dsfe.MEASURE_ID, "Depression Screening and Follow-Up for Adolescents and "
                   "Adults", dsfe.evaluate, dsfe.STRATA, _NO_EXCEPTION,
                   ((dsfe.SCREENING, "Depression screening"),
                    (dsfe.FOLLOW_UP, "Follow-up on positive screen"))),
        MeasureDef(dmse.MEASURE_ID, "Utilization of the PHQ-9 to Monitor Depression Symptoms "
                   "for Adolescents and Adults", dmse.evaluate, dmse.STRATA, _NO_EXCEPTION,
                   tuple((rate, f"Assessment period {n}")
                         for n, rate in enumerate(dmse.RATES, start=1))),
        MeasureDef(drre.MEASURE_ID, "Depression Remission or Response for Adolescents and "
                   "Adults", drre.evaluate, drre.STRATA, _NO_EXCEPTION,
                   ((drre.FOLLOW_UP, "Follow-up PHQ-9"), (drre.REMISSION, "Depression remission"),
                    (drre.RESPONSE, "Depression response"))),
    )
}


def groups_of(measure: MeasureDef, outcomes: Sequence[Outcome]
              ) -> list[tuple[str | None, list[Outcome]]]:
    """The measure's groups with the outcomes each counts: one group (None) of ``outcomes``
    for a one-rate measure; per rate, the patients' outcomes for that rate."""
    if not measure.groups:
        return [(None, list(outcomes))]
    return [(rate, [o.rates[rate] for o in outcomes if rate in o.rates])
            for rate, _ in measure.groups]


def rated(measure: MeasureDef, outcomes: Sequence[Outcome]) -> list[tuple[str, list[Outcome]]]:
    """What a table or a CSV shows per measure: ``(label, outcomes)``, the label the measure's
    id, or ``<id>/<rate>`` for each rate of a several-rate measure."""
    return [(measure.id if rate is None else f"{measure.id}/{rate}", members)
            for rate, members in groups_of(measure, outcomes)]


def _group_code(measure: MeasureDef, rate: str | None) -> Resource:
    title = dict(measure.groups).get(rate or "", rate or "")
    return {"coding": [{"system": MEASURE_GROUP, "code": rate}], "text": title}


def report_identifier(measure: str, period: Period, kind: str, patient: str | None = None) -> str:
    value = f"measure-report:{measure}:{period.label}:{kind}"
    return f"{value}:{patient}" if patient else value


def rate(outcomes: Sequence[Outcome]) -> float | None:
    """numerator / (denominator − exclusions − exceptions), None when that is 0."""
    eligible = [o for o in outcomes if o.has(DENOMINATOR) and not o.has(DENOMINATOR_EXCLUSION)
                and not o.has(DENOMINATOR_EXCEPTION)]
    if not eligible:
        return None
    return round(sum(o.has(NUMERATOR) for o in eligible) / len(eligible), 4)


def _base(measure: MeasureDef, period: Period, kind: str, identifier: str,
          date: str) -> Resource:
    return {
        "resourceType": "MeasureReport",
        "identifier": [{"system": BHI_IDENTIFIER, "value": identifier}],
        "status": "complete",
        "type": kind,
        "measure": measure.url,
        "date": date,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "improvementNotation": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
            "code": "increase"}]},
    }


def _population(code: str, count: int) -> Resource:
    return {"code": {"coding": [{"system": _POPULATION_SYSTEM, "code": code}]}, "count": count}


def _score(value: float | None) -> Resource:
    """``measureScore``: a proportion measure's report carries one (the R4 validator's
    MEASURE_MR_SCORE_REQUIRED). With an empty denominator the proportion is 0/0, not a number:
    its ``value`` element carries the data-absent-reason ``not-a-number`` and no decimal, as
    the HL7 Quality Measure IG 2.0.0 test case MeasureReport-IGProportion-dev writes it (an
    extension on the Quantity itself leaves ``value`` absent, which the validator refuses:
    MEASURE_MR_SCORE_VALUE_REQUIRED)."""
    if value is None:
        return {"_value": {"extension": [{"url": _DATA_ABSENT, "valueCode": "not-a-number"}]}}
    return {"value": value}


def _strata(measure: MeasureDef, outcomes: Sequence[Outcome],
            lists: bool = False, prefix: str = "") -> tuple[Resource, list[Resource]]:
    """The age stratifier: each stratum's counts and rate (and, for a subject list, a
    contained List per stratum population)."""
    strata, contained = [], []
    for value in measure.strata:
        members = [o for o in outcomes if o.stratum == value]
        populations = []
        for code in measure.populations:
            who = sorted(o.patient for o in members if o.has(code))
            population = _population(code, len(who))
            if lists and who:
                ident = f"{prefix}{code}-{value.replace('+', 'plus')}"
                contained.append(_list(ident, f"{measure.id} {value} {code}", who))
                population["subjectResults"] = {"reference": f"#{ident}"}
            populations.append(population)
        strata.append({"value": {"text": value}, "population": populations,
                       "measureScore": _score(rate(members))})
    return {"code": [{"text": _STRATIFIER_AGE}], "stratum": strata}, contained


def _list(ident: str, title: str, patients: Sequence[str]) -> Resource:
    return {"resourceType": "List", "id": ident, "status": "current", "mode": "snapshot",
            "title": title, "entry": [{"item": {"reference": p}} for p in patients]}


def individual_report(measure: MeasureDef, period: Period, outcome: Outcome,
                      date: str) -> Resource:
    report = _base(measure, period, "individual",
                   report_identifier(measure.id, period, "individual", outcome.patient), date)
    report["subject"] = {"reference": outcome.patient}
    if measure.groups:
        # Every rate of the Measure has its group (the validator's MEASURE_MR_GRP_MISSING_BY_CODE);
        # a rate the patient is not in counts 0 in every population.
        report["group"] = [
            {"code": _group_code(measure, rate), **_individual_group(
                measure, outcome.rates.get(rate) or Outcome(
                    measure.id, outcome.patient, frozenset(), outcome.stratum))}
            for rate, _ in measure.groups]
    else:
        report["group"] = [_individual_group(measure, outcome)]
    if outcome.evaluated:
        report["evaluatedResource"] = [{"reference": ref} for ref in outcome.evaluated]
    return report


def _individual_group(measure: MeasureDef, outcome: Outcome) -> Resource:
    populations = []
    for code in measure.populations:
        population = _population(code, int(outcome.has(code)))
        if code == NUMERATOR and outcome.reason:
            population["extension"] = [{"url": CARE_GAP_REASON, "valueString": outcome.reason}]
        populations.append(population)
    group: Resource = {"population": populations}
    if outcome.stratum is not None:
        group["stratifier"] = [{
            "code": [{"text": _STRATIFIER_AGE}],
            "stratum": [{"value": {"text": outcome.stratum},
                         "population": [_population(c, int(outcome.has(c)))
                                        for c in measure.populations],
                         "measureScore": _score(rate([outcome]))}],
        }]
    group["measureScore"] = _score(rate([outcome]))
    return group


def subject_list_report(measure: MeasureDef, period: Period, outcomes: Sequence[Outcome],
                        date: str) -> Resource:
    report = _base(measure, period, "subject-list",
                   report_identifier(measure.id, period, "subject-list"), date)
    contained: list[Resource] = []
    groups = []
    for rate_id, members_of in groups_of(measure, outcomes):
        prefix = f"{rate_id}-" if rate_id else ""
        populations = []
        for code in measure.populations:
            members = sorted(o.patient for o in members_of if o.has(code))
            population = _population(code, len(members))
            if members:
                title = f"{measure.id} {period.label} {prefix}{code}"
                contained.append(_list(f"{prefix}{code}", title, members))
                population["subjectResults"] = {"reference": f"#{prefix}{code}"}
            populations.append(population)
        group: Resource = {"population": populations, "measureScore": _score(rate(members_of))}
        if rate_id:
            group = {"code": _group_code(measure, rate_id), **group}
        if measure.strata:
            stratifier, lists = _strata(measure, members_of, lists=True, prefix=prefix)
            group["stratifier"] = [stratifier]
            contained += lists
        groups.append(group)
    if contained:
        report["contained"] = contained
    report["group"] = groups
    return report


def summary_report(measure: MeasureDef, period: Period, outcomes: Sequence[Outcome],
                   date: str) -> Resource:
    report = _base(measure, period, "summary", report_identifier(measure.id, period, "summary"),
                   date)
    groups = []
    for rate_id, members in groups_of(measure, outcomes):
        group: Resource = {"population": [_population(c, sum(o.has(c) for o in members))
                                          for c in measure.populations],
                           "measureScore": _score(rate(members))}
        if rate_id:
            group = {"code": _group_code(measure, rate_id), **group}
        if measure.strata:
            group["stratifier"] = [_strata(measure, members)[0]]
        groups.append(group)
    report["group"] = groups
    return report


def identifier_of(report: Mapping[str, Any]) -> str | None:
    for ident in report.get("identifier") or []:
        if isinstance(ident, Mapping) and ident.get("system") == BHI_IDENTIFIER:
            value = ident.get("value")
            if isinstance(value, str):
                return value
    return None


Action = Literal["create", "update", "unchanged"]


@dataclass(frozen=True, slots=True)
class Write:
    identifier: str
    action: Action
    entry: Resource | None  # the transaction entry; None when unchanged


_IGNORED: Final = frozenset({"id", "meta", "date", "text"})


def _content(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in _IGNORED}


def plan_writes(reports: Iterable[Resource], existing: Mapping[str, Resource]) -> list[Write]:
    """Bring the server's reports up to date: ``existing`` maps identifier values to the
    MeasureReports the server holds. Only ``date`` (the run's time) may differ for a report
    to be unchanged."""
    writes = []
    for report in reports:
        value = identifier_of(report)
        if value is None:
            raise ValueError("a MeasureReport without its business identifier")
        stored = existing.get(value)
        if stored is None:
            entry = transaction_entry(report, full_url_for(value), "create",
                                      if_none_exist=identifier_condition(value))
            writes.append(Write(value, "create", entry))
        elif _content(stored) == _content(report):
            writes.append(Write(value, "unchanged", None))
        else:
            version = (stored.get("meta") or {}).get("versionId")
            body = {**report, "id": stored["id"]}
            entry = transaction_entry(body, full_url_for(value), "update",
                                      if_match=etag(version) if version else None)
            writes.append(Write(value, "update", entry))
    return writes
