"""The ``apply`` pipeline: files read and partitioned by patient (spilled to disk past a size),
each patient's record resolved through merges, scored, put on a timeline and planned by the
protocol, the planned entries streamed into one transaction Bundle (:class:`BundleWriter`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhirjson import patient_of, replaced_by, survivors
from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.screens import screening_scores
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.sources import Origin, PatientBuckets, SourceError, expand_paths, read_resources
from bhi_fhir.timeline import build_timeline
from bhi_fhir.workflow.caseload import caseload_manager
from bhi_fhir.workflow.engine import WorkflowError, apply
from bhi_fhir.workflow.feedback import is_staff_feedback, staff_feedback
from bhi_fhir.workflow.plan import BundleEntries, Plan
from bhi_fhir.workflow.plan_settings import timeline_settings
from bhi_fhir.workflow.protocol import Protocol, default_protocol

__all__ = ["ApplyReport", "BundleWriter", "run_apply"]


_BUCKET_BYTES = 64 * 1024 * 1024
# Resources that belong to no patient and are expected in an export: not errors.
_SHARED = frozenset(
    {
        "Questionnaire",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "PlanDefinition",
        "ActivityDefinition",
        "Device",
        "Group",
    }
)
# Resources the protocol does not read, normal in an export (a Synthea Bundle's Provenance and
# Medication, a bulk-export folder's parameters.json, the OperationOutcomes of its error/
# files): skipped and counted, never errors.
_SKIPPED = frozenset({"Provenance", "Medication", "Parameters", "OperationOutcome"})



@dataclass(slots=True)
class ApplyReport:
    """What a run did, per patient, kept small: the Plans themselves go to a sink (the
    streamed Bundle) when one is given, so memory does not grow with the resources written."""

    plans: list[Plan] = field(default_factory=list)  # only when run without a sink
    patients: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[str, list[str]] = field(default_factory=dict)  # readable, per patient with any
    errors: list[dict[str, Any]] = field(default_factory=list)
    writes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # resource type → count (_SKIPPED)
    future_dated: int = 0  # screens authored after --today: not facts (build_timeline)

    def error(self, file: str, line: int | None, message: str) -> None:
        self.errors.append({"file": file, "line": line, "message": message})

    def record(self, plan: Plan) -> None:
        self.writes += len(plan.writes)
        self.patients.append({
            "patient": plan.patient,
            "actions": [
                {
                    "rule": w.rule,
                    "resourceType": w.resource_type,
                    "priority": w.priority,
                    "reason": w.reason,
                }
                for w in plan.writes
            ],
        })
        lines = [
            f"  {w.method:6} {w.rule}: {w.resource_type}"
            f"{f', {w.priority}' if w.priority else ''} — {w.reason}"
            for w in plan.writes
        ] + [f"  skip   {k.rule}: {k.identifier} ({k.why})" for k in plan.skipped]
        if lines:
            self.lines[plan.patient] = lines

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"patients": self.patients, "errors": self.errors}
        if self.skipped:
            found["skipped"] = dict(sorted(self.skipped.items()))
        if self.future_dated:
            found["futureDated"] = self.future_dated
        return found


class BundleWriter:
    """Streams a transaction Bundle to ``path`` entry by entry, atomically: the entries go to a
    temporary file beside it, renamed into place only when the whole run has finished, so a
    crash never leaves a half-written Bundle where a complete one is expected."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.partial")
        self._handle = self._tmp.open("w", encoding="utf-8")
        self._handle.write('{"resourceType": "Bundle", "type": "transaction", "entry": [')
        self._first = True
        self._entries = BundleEntries()  # no fullUrl twice, also across merged exports

    def __call__(self, plan: Plan) -> None:
        for entry in self._entries(plan):
            self._handle.write("\n " if self._first else ",\n ")
            self._handle.write(json.dumps(entry, ensure_ascii=False))
            self._first = False

    def close(self, *, commit: bool) -> None:
        self._handle.write("\n]}\n")
        self._handle.close()
        if commit:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def _origins(paths: list[Path]) -> Iterator[tuple[dict[str, Any] | SourceError, Origin]]:
    """Resources with the file they came from (read errors also carry their line).

    A Bundle's references to its own entries (``urn:uuid:`` fullUrls, as in a Synthea
    transaction Bundle) come out as the entries' ``Type/id`` (``local_references``).
    """
    for path in expand_paths(paths):
        for item in read_resources([path], local_references=True):
            if isinstance(item, SourceError):
                yield item, (item.file, item.line)
            else:
                yield item, (str(path), None)


def run_apply(
    inputs: list[Path],
    plan: PracticePlan,
    today: date,
    protocol: Protocol | None = None,
    *,
    sink: Callable[[Plan], None] | None = None,
    progress: Callable[[], None] | None = None,
    staff_feedback_tasks: bool = False,
) -> ApplyReport:
    """Read ``inputs``, score, build facts, apply the protocol: one Plan per patient.

    Each Plan goes to ``sink`` when given (and is not kept), else into ``report.plans``;
    ``progress`` is called once per patient done. With ``staff_feedback_tasks`` a last Plan
    (patient ``practice``) holds the staff workflow survey Tasks of today's period
    (``workflow.feedback``), not again when ``inputs`` already hold them: practice-level
    work, asked for by a run over the practice's whole caseload, not by every run.
    """
    protocol = protocol or default_protocol()
    report = ApplyReport()
    total_bytes = sum(p.stat().st_size for p in expand_paths(inputs) if p.exists())
    count = max(1, -(-total_bytes // _BUCKET_BYTES))
    questionnaires: dict[str, dict[str, Any]] = {}
    caseloads: dict[str, int] = {}
    cut_points = plan.screening.cut_points
    settings = timeline_settings(plan)
    links: dict[str, str] = {}  # replaced Patient → the Patient its link points to
    staff_tasks: dict[str, dict[str, Any]] = {}  # staff-feedback Tasks read, by identifier
    present: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="bhi-fhir-apply-") as tmp:
        buckets = PatientBuckets(count, Path(tmp) if count > 1 else None)
        for item, origin in _origins(inputs):
            if isinstance(item, SourceError):
                report.error(item.file, item.line, item.message)
                continue
            kind = item["resourceType"]
            if kind == "Questionnaire":
                url = item.get("url")
                if isinstance(url, str):
                    questionnaires[url.split("|")[0]] = item
                continue
            if kind in _SKIPPED:
                report.skipped[kind] = report.skipped.get(kind, 0) + 1
                continue
            if is_staff_feedback(item):  # the practice's own Tasks: no patient
                for ident in item.get("identifier") or []:
                    if ident.get("system") == BHI_IDENTIFIER:
                        staff_tasks[str(ident.get("value"))] = item
                continue
            patient = patient_of(item)
            if patient is None:
                if kind not in _SHARED:
                    report.error(origin[0], origin[1], f"{kind} has no Patient reference")
                continue
            manager = caseload_manager(item, plan)  # the caseloads input of apply()
            if manager is not None:
                caseloads[manager] = caseloads.get(manager, 0) + 1
            if kind == "Patient":
                present.add(patient)
                if (successor := replaced_by(item)) is not None and successor != patient:
                    links[patient] = successor
            buckets.add(patient, item, origin)
        survivor_of = survivors(links, present)
        merged: dict[str, list[tuple[dict[str, Any], Origin]]] = {}

        def done(patient: str, items: list[tuple[dict[str, Any], Origin]]) -> None:
            result = _one_patient(
                patient, items, plan, today, protocol, report,
                questionnaires, caseloads, cut_points, settings,
            )  # fmt: skip
            if result is not None:
                report.record(result)
                if sink is not None:
                    sink(result)
                else:
                    report.plans.append(result)
            if progress is not None:
                progress()

        surviving = set(survivor_of.values())
        for bucket in buckets:
            by_patient: dict[str, list[tuple[dict[str, Any], Origin]]] = {}
            for resource, origin in bucket:
                by_patient.setdefault(patient_of(resource) or "", []).append((resource, origin))
            for patient in sorted(by_patient):
                if patient in survivor_of or patient in surviving:
                    merged.setdefault(survivor_of.get(patient, patient), []).extend(
                        by_patient[patient]
                    )
                    continue
                done(patient, by_patient[patient])
        for patient in sorted(merged):
            done(patient, merged[patient])
    # The practice-level writes after every patient's: the staff workflow survey Tasks.
    if staff_feedback_tasks:
        staff = staff_feedback(plan, today, staff_tasks)
        report.record(staff)
        if sink is not None:
            sink(staff)
        else:
            report.plans.append(staff)
    return report


def _one_patient(
    patient: str,
    items: list[tuple[dict[str, Any], Origin]],
    plan: PracticePlan,
    today: date,
    protocol: Protocol,
    report: ApplyReport,
    questionnaires: dict[str, dict[str, Any]],
    caseloads: dict[str, int],
    cut_points: Any,
    settings: Any,
) -> Plan | None:
    resources = [r for r, _ in items]
    records = [r for r in resources if r["resourceType"] == "Patient"]
    patient_resource = next((r for r in records if f"Patient/{r.get('id')}" == patient),
                            records[0] if records else None)  # fmt: skip
    sex = sex_of(patient_resource)
    origins = {id(r): origin for r, origin in items}

    def unscored(resource: Mapping[str, Any], exc: Exception) -> None:
        file, line = origins[id(resource)]
        report.error(file, line, f"cannot score {_ref(dict(resource))}: {exc}")

    # Responses, screening Observations and reports: one Score per screen.
    # Every status is scored: the scorer and the timeline decide what a non-final or
    # entered-in-error response counts for (a crisis answer is never lost); one odd response
    # is reported and does not stop the run.
    scores = screening_scores(resources, questionnaires=questionnaires, patient_sex=sex,
                              cut_points=cut_points, on_error=unscored)
    timeline = build_timeline(patient, resources, scores, today, settings)
    report.future_dated += timeline.future_dated
    try:
        result = apply(protocol, timeline, plan, caseloads=caseloads)
    except WorkflowError as exc:
        report.error(items[0][1][0], None, str(exc))
        return None
    for write in result.writes:
        if write.output == "enroll.careplan" and write.method == "create":
            manager = str(write.resource["contributor"][0]["reference"])
            caseloads[manager] = caseloads.get(manager, 0) + 1
    return result


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
