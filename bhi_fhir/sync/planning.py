"""One patient's context → the writes the sync intends, with a Provenance each. Pure.

Inputs are what the server source gathered (the patient, their responses, their prior
CarePlan/Task/ServiceRequest/Encounter/Consent/Procedure and the identifiers of the
screening Observations already written); the outputs are :class:`SyncWrite` items ready to
go into a transaction Bundle, and the per-patient diff a dry run prints.

* Workflow writes come from :func:`bhi_fhir.workflow.apply` (conditional create by business
  identifier and patient, versioned update with ``ifMatch``).
* Screening Observations come from :func:`bhi_fhir.instruments.screening_observations`; a
  response's set is written whole (conditional creates) when any of it is missing, so the
  panel's ``urn:uuid`` ``hasMember`` references always resolve.
* Provenance (R4 Provenance has no ``identifier``): one per workflow write, one per
  response's screening set; idempotent through a ``meta.tag`` carrying a deterministic key and
  ``ifNoneExist: _tag=…`` (the same convention as billing).
* Merged records (:func:`merge_contexts`): as ``apply`` does over files, a replaced record
  (Patient.link replaced-by, https://hl7.org/fhir/R4/patient-definitions.html#Patient.link,
  followed through chains; a cycle is not followed) whose surviving Patient was read is planned
  as part of the survivor: the survivor's facts include its screens, every write (screening
  Observations too) names the survivor as subject, and the replaced record gets no plan of its
  own. When the survivor cannot be read the record is planned alone: as an inactive record it
  gets crisis work only, whose reason names the link (``timeline``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any, Literal
from urllib.parse import quote

from bhi_fhir.codes import BHI_BASE, BHI_IDENTIFIER
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import etag_version, replaced_by, survivors
from bhi_fhir.instruments import Score, screening_observations, sex_of
from bhi_fhir.instruments import full_url as observation_full_url
from bhi_fhir.instruments.observations import response_key
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.provenance import agent as provenance_agent
from bhi_fhir.provenance import provenance
from bhi_fhir.timeline import build_timeline, is_future_dated, practice_day
from bhi_fhir.workflow import Protocol, WorkflowError, apply, timeline_settings
from bhi_fhir.workflow.plan import PlannedWrite, identifier_condition, transaction_entry

__all__ = [
    "BHI_RULE",
    "SCREENING_RULE",
    "Change",
    "PatientContext",
    "PatientPlan",
    "SyncWrite",
    "merge_contexts",
    "plan_patient",
    "provenance_for",
    "write_provenance_key",
]

Method = Literal["create", "update"]

BHI_RULE = f"{BHI_BASE}/CodeSystem/bhi-rule"  # Provenance.reason: the action id
SCREENING_RULE = "screening"  # the "rule" of screening Observations in reports
_PROVENANCE_NS = uuid.uuid5(uuid.NAMESPACE_URL, f"{BHI_IDENTIFIER}/provenance")


@dataclass(slots=True)
class PatientContext:
    patient: str  # "Patient/<id>"
    patient_resource: Resource | None = None
    responses: list[Resource] = field(default_factory=list)  # all of the patient's QRs
    resources: list[Resource] = field(default_factory=list)  # CarePlan, Task, Consent, ...
    observation_ids: set[str] = field(default_factory=set)  # screening Observations on server
    merged: list[str] = field(default_factory=list)  # replaced records folded in (merge_contexts)


@dataclass(frozen=True, slots=True)
class SyncWrite:
    """One entry of a transaction: a conditional create or a versioned update."""

    rule: str
    identifier: str
    method: Method
    resource: Resource
    full_url: str
    reason: str
    if_none_exist: str | None = None
    if_match: str | None = None

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    def entry(self) -> Resource:
        return transaction_entry(self.resource, self.full_url, self.method,
                                 if_none_exist=self.if_none_exist, if_match=self.if_match)


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the per-patient diff."""

    rule: str
    resource_type: str
    identifier: str
    change: str  # create | update | unchanged | completed (not reopened) | ...
    reason: str


@dataclass(slots=True)
class PatientPlan:
    patient: str
    writes: list[SyncWrite] = field(default_factory=list)  # without Provenance
    provenance: list[SyncWrite] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # skipped inputs, failed rules (no PHI)
    unrecognised: int = 0  # responses to questionnaires we do not score
    future_dated: int = 0  # screens authored after today: not facts (build_timeline)
    before_backfill: int = 0  # responses older than sync.backfill_days: no Observations
    merged: list[str] = field(default_factory=list)  # replaced records planned as this patient


def _tag_query(value: str) -> str:
    return "_tag=" + quote(f"{BHI_IDENTIFIER}|{value}", safe="/:")


def _latest_versions(responses: Iterable[Resource]) -> list[Resource]:
    """One response per id, the highest versionId (the run may have seen two versions)."""
    best: dict[str, Resource] = {}
    for qr in responses:
        key = str(qr.get("id"))
        old = best.get(key)
        if old is None or _version_number(qr) >= _version_number(old):
            best[key] = qr
    return list(best.values())


def _version_number(resource: Mapping[str, Any]) -> int:
    version = (resource.get("meta") or {}).get("versionId")
    try:
        return int(str(version))
    except ValueError:
        return 0


def provenance_for(
    targets: Sequence[str],
    *,
    key: str,
    rule: str,
    reason: str,
    operation: Literal["CREATE", "UPDATE"],
    sources: Sequence[str],
    agent: Resource,
    recorded: str,
) -> SyncWrite:
    """A Provenance for ``targets`` (fullUrls in the same transaction, or Type/id)."""
    resource = provenance(
        targets,
        key=key,
        operation=operation,
        recorded=recorded,
        agents=[provenance_agent(agent)],
        sources=sources,
        reason={"coding": [{"system": BHI_RULE, "code": rule}], "text": reason},
    )
    return SyncWrite(
        rule=rule,
        identifier=key,
        method="create",
        resource=resource,
        full_url=f"urn:uuid:{uuid.uuid5(_PROVENANCE_NS, key)}",
        reason=reason,
        if_none_exist=_tag_query(key),
    )


def merge_contexts(
    patients: Sequence[str], contexts: Mapping[str, PatientContext]
) -> list[PatientContext]:
    """One context per patient to plan, in the order of ``patients``: a replaced record whose
    surviving Patient is among ``contexts`` (its Patient was read) becomes that survivor's
    context, holding the responses, resources and screening identifiers of every record it
    replaces (``merged`` names them); the others are their own. See the module docstring."""
    links = {
        p: s for p, ctx in contexts.items()
        if ctx.patient_resource is not None
        and (s := replaced_by(ctx.patient_resource)) is not None and s != p
    }
    present = {p for p, ctx in contexts.items() if ctx.patient_resource is not None}
    survivor_of = survivors(links, present)
    units: dict[str, PatientContext] = {}
    for patient in patients:
        key = survivor_of.get(patient, patient)
        if key in units or key not in contexts:
            continue
        own = contexts[key]
        unit = PatientContext(key, own.patient_resource, list(own.responses),
                              list(own.resources), set(own.observation_ids))
        for replaced, survivor in survivor_of.items():
            if survivor == key and (ctx := contexts.get(replaced)) is not None:
                unit.responses += ctx.responses
                unit.resources += ctx.resources
                unit.observation_ids |= ctx.observation_ids
                unit.merged.append(replaced)
        units[key] = unit
    return list(units.values())


def plan_patient(
    context: PatientContext,
    *,
    protocol: Protocol,
    practice_plan: PracticePlan,
    today: date,
    recorded: str,
    agent: Resource,
    questionnaires: Mapping[str, Resource] | None = None,
) -> PatientPlan:
    """Score, build facts, apply the protocol and add screening Observations + Provenance."""
    result = PatientPlan(context.patient, merged=list(context.merged))
    for replaced in context.merged:
        result.changes.append(
            Change("merged", "Patient", replaced, "merged",
                   f"replaced by {context.patient} (Patient.link replaced-by): "
                   "its screens are planned here")
        )
    questionnaires = questionnaires or {}
    sex = sex_of(context.patient_resource) if context.patient_resource else None
    cut_points = practice_plan.screening.cut_points
    latest = {response_key(qr): qr for qr in _latest_versions(context.responses)}

    def unscored(qr: Mapping[str, Any], exc: Exception) -> None:
        # A malformed response must not stop the patient.
        result.errors.append(
            f"{response_key(qr)}: skipped, cannot be scored ({type(exc).__name__})"
        )

    # Responses and screening Observations/reports: one Score per screen.
    screens = screening_scores([*latest.values(), *context.resources],
                               questionnaires=questionnaires, patient_sex=sex,
                               cut_points=cut_points, on_error=unscored)
    result.unrecognised += sum(1 for s in screens if s.instrument is None)
    screens = [s for s in screens if s.instrument is not None]
    if context.merged:  # a replaced record's screens are the survivor's (its Observations too)
        screens = [dataclasses.replace(s, subject_ref=context.patient)
                   if s.subject_ref in context.merged else s for s in screens]
    # Only a response gets screening Observations written: a screen read from Observations
    # already is one. Neither a future-dated response (no fact) nor one older than the backfill
    # horizon (a fact, kept for baselines) is written as Observations.
    settings = timeline_settings(practice_plan)
    scored: list[tuple[Score, Resource]] = []
    for s in screens:
        if s.response_ref not in latest:
            continue
        window = _observation_window(s.authored, today, settings.zone,
                                     practice_plan.sync.backfill_days)
        if window == "before-backfill":
            result.before_backfill += 1
        elif window is None:
            scored.append((s, latest[s.response_ref]))

    resources: list[Resource] = [*context.resources, *context.responses]
    if context.patient_resource is not None:
        resources.append(context.patient_resource)
    try:
        timeline = build_timeline(context.patient, resources, screens, today, settings)
        result.future_dated = timeline.future_dated
        plan = apply(protocol, timeline, practice_plan)
    except (WorkflowError, ValueError, KeyError, TypeError) as exc:
        result.errors.append(f"workflow skipped: {exc}")
        plan = None

    if plan is not None:
        for skipped in plan.skipped:
            kind = timeline.existing.get(skipped.identifier, {}).get("resourceType", "?")
            result.changes.append(
                Change(skipped.rule, str(kind), skipped.identifier, skipped.why, "")
            )
        for write in plan.writes:
            result.writes.append(
                SyncWrite(
                    rule=write.rule,
                    identifier=write.identifier,
                    method=write.method,
                    resource=write.resource,
                    full_url=write.full_url,
                    reason=write.reason,
                    if_none_exist=identifier_condition(write.identifier, context.patient)
                    if write.method == "create" else None,
                    if_match=write.if_match,
                )
            )
            result.changes.append(
                Change(write.rule, write.resource_type, write.identifier, write.method,
                       write.reason)
            )
            result.provenance.append(
                provenance_for(
                    [write.full_url], key=write_provenance_key(write), rule=write.rule,
                    reason=write.reason,
                    operation="CREATE" if write.method == "create" else "UPDATE",
                    sources=write.sources, agent=agent, recorded=recorded,
                )
            )

    for score, qr in scored:
        observations = screening_observations(score, qr)
        if not observations:
            continue
        idents = [_identifier_of(o) for o in observations]
        panel = idents[-1]
        if all(i in context.observation_ids for i in idents):
            result.changes.append(
                Change(SCREENING_RULE, "Observation", panel, "unchanged",
                       f"{len(idents)} screening Observations on file")
            )
            continue
        for obs, ident in zip(observations, idents, strict=True):
            result.writes.append(
                SyncWrite(
                    rule=SCREENING_RULE, identifier=ident, method="create", resource=obs,
                    full_url=observation_full_url(ident), reason="screening result",
                    if_none_exist=identifier_condition(ident, context.patient),
                )
            )
        source = f"QuestionnaireResponse/{qr.get('id')}"
        version = (qr.get("meta") or {}).get("versionId")
        if version:
            source += f"/_history/{version}"
        reason = f"{score.instrument} scored" + (
            f" {score.total}" if score.total is not None else ""
        )
        result.changes.append(
            Change(SCREENING_RULE, "Observation", panel, "create",
                   f"{reason}: {len(idents)} screening Observations")
        )
        result.provenance.append(
            provenance_for(
                [observation_full_url(i) for i in idents], key=f"provenance:{panel}",
                rule=SCREENING_RULE, reason=reason, operation="CREATE", sources=[source],
                agent=agent, recorded=recorded,
            )
        )
    return result


def _observation_window(
    authored: str | None, today: date, zone: tzinfo | None, backfill_days: int | None
) -> Literal["future", "before-backfill"] | None:
    """Why a response's screen gets no screening Observations, or None when it does: authored
    after today in the practice's zone, or more than ``backfill_days`` days before today."""
    if is_future_dated(authored, today, zone):
        return "future"
    day = practice_day(authored, zone)
    if backfill_days is not None and day is not None and (today - day).days > backfill_days:
        return "before-backfill"
    return None


def write_provenance_key(write: PlannedWrite) -> str:
    """The Provenance key of a workflow write: one per created resource, one per version an
    update starts from (so a repeated update finds its Provenance, a later one adds another)."""
    if write.method != "update":
        return f"provenance:{write.identifier}"
    base_version = etag_version(write.if_match)
    return f"provenance:{write.identifier}:update:{base_version}"


def _identifier_of(resource: Mapping[str, Any]) -> str:
    for ident in resource.get("identifier") or []:
        if ident.get("system") == BHI_IDENTIFIER:
            return str(ident["value"])
    raise ValueError("generated resource without a business identifier")
