"""The workflow engine: protocol + a patient's facts + practice plan → Plan. Pure.

``apply`` walks the protocol's actions (see :mod:`bhi_fhir.workflow.protocol`), evaluates their
conditions over ``%facts`` (the patient's :class:`~bhi_fhir.timeline.Timeline`) and ``%plan``
(the practice plan), and builds each output from its ActivityDefinition and dynamicValues.

Every output gets a deterministic business identifier ``<output>:<key>`` under
``BHI_IDENTIFIER``, where the key is the action's identifier-key expression (source
resource/version + period). Against the resources bhi-fhir generated before:

* same identifier, still active → **update** (versioned), or nothing if unchanged; the
  existing ``status`` is kept, so a person's progress on a Task is never reset;
* same identifier, terminal status (completed, cancelled, ...) → **not reopened**;
* same identifier without a server id (a conditional create read back from an earlier
  transaction Bundle, e.g. ``apply``'s own ``--out``) and the same content → nothing; with
  other content → the create again (the server keeps whichever arrives first; the next run
  against the server updates it);
* otherwise → **create** (conditional on the identifier).

A dynamicValue path ending in ``[]`` (``supportingInfo[]``) sets that list element from the
whole collection its expression yields; any other path takes exactly one value.

A deceased patient (``%facts.deceased``, death on or before ``today``) gets no new work from
the rules (their conditions) and, after them, bhi-fhir's open Tasks are proposed for
cancellation with ``statusReason``, the active BHI CarePlan for the practice plan's
``records.deceased_careplan_status`` (rule ``deceased``).

Conventions linking the outputs of one rule: Tasks are ``basedOn`` the rule's CarePlan and
listed in its ``activity``; a Task's ``focus`` is the rule's ServiceRequest (SDOH referral
pattern, HL7 SDOHCC-TaskForReferralManagement). Resources lacking a narrative get a generated
one (US Core CarePlan requires ``text``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bhi_fhir.codes import BHI_IDENTIFIER, MENTAL_HEALTH_CARE_PLAN, SNOMED, claims
from bhi_fhir.fhirjson import etag
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.timeline import (
    TERMINAL_STATUSES,
    Timeline,
)
from bhi_fhir.workflow.caseload import assign_care_manager
from bhi_fhir.workflow.feedback import patient_feedback
from bhi_fhir.workflow.fhirpath import ExpressionError, truthy
from bhi_fhir.workflow.plan import Plan, PlannedWrite, Skipped, full_url_for
from bhi_fhir.workflow.protocol import Action, Protocol, Template
from bhi_fhir.workflow.validate import ResourceInvalid, validate_resource

__all__ = ["WorkflowError", "apply"]

_DEFAULT_STATUS = {"Task": "requested", "ServiceRequest": "active", "CarePlan": "active"}
_DEFAULT_INTENT = {"Task": "order", "ServiceRequest": "order", "CarePlan": "plan"}
_PATIENT_FIELD = {"Task": "for"}
# ActivityDefinition elements copied onto each kind (the others go to the narrative only).
_STATIC_FIELDS = {
    "Task": ("code", "priority", "description"),
    "ServiceRequest": ("code", "priority"),
    "CarePlan": ("description",),
}
_XHTML = "http://www.w3.org/1999/xhtml"


class WorkflowError(ValueError):
    """A rule failed for one patient (bad expression result, bad path); names the rule."""


_VIEWS: dict[int, tuple[PracticePlan, dict[str, Any]]] = {}


def _view(plan: PracticePlan) -> dict[str, Any]:
    """``plan.fhirpath_view()``, computed once per plan object (plans are frozen)."""
    found = _VIEWS.get(id(plan))
    if found is None or found[0] is not plan:
        if len(_VIEWS) > 16:
            _VIEWS.clear()
        found = _VIEWS[id(plan)] = (plan, plan.fhirpath_view())
    return found[1]


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@lru_cache(maxsize=1024)
def _parse_path(path: str) -> tuple[tuple[str, int | None], ...]:
    """``a.b[0].c`` → ``(("a", None), ("b", 0), ("c", None))``, parsed once per path."""
    parts = []
    for part in path.split("."):
        name, _, index_text = part.partition("[")
        parts.append((name, int(index_text.rstrip("]")) if index_text else None))
    return tuple(parts)


def _set_path(resource: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[0].c`` in ``resource``, creating objects and lists on the way."""
    node: Any = resource
    parts = _parse_path(path)
    last_position = len(parts) - 1
    for position, (name, index) in enumerate(parts):
        last = position == last_position
        if index is not None:
            items = node.setdefault(name, [])
            if not isinstance(items, list):
                raise WorkflowError(f"path {path!r}: {name} is not a list")
            while len(items) <= index:
                items.append({})
            if last:
                items[index] = value
            else:
                node = items[index]
        elif last:
            node[name] = value
        else:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise WorkflowError(f"path {path!r}: {name} is not an object")


def _narrative(template: Template, resource: Mapping[str, Any]) -> dict[str, str]:
    lines = [template.title]
    description = resource.get("description") or template.static.get("description")
    if isinstance(description, str) and description != template.title:
        lines.append(description)
    body = "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in lines)
    return {"status": "generated", "div": f'<div xmlns="{_XHTML}">{body}</div>'}


@dataclass(slots=True)
class _Output:
    action: Action
    identifier: str
    resource: dict[str, Any]
    reason: str
    sources: tuple[str, ...]
    existing: dict[str, Any] | None = None
    full_url: str = ""
    skip: str | None = None


@dataclass(slots=True)
class _Run:
    timeline: Timeline
    outputs: list[_Output] = field(default_factory=list)


def _evaluate_strings(expr_result: list[Any]) -> list[str]:
    return [str(v) for v in expr_result if v is not None]


def _build(action: Action, variables: dict[str, Any], run: _Run) -> None:
    template = action.template
    assert template is not None and action.key is not None
    key = "".join(_evaluate_strings(action.key.evaluate(variables)))
    if not key:
        raise WorkflowError(f"{action.id}: identifier-key is empty")
    identifier = f"{action.id}:{key}"
    kind = template.kind
    resource: dict[str, Any] = {"resourceType": kind}
    if template.static.get("profile"):  # ActivityDefinition.profile: the one it conforms to
        resource["meta"] = claims(str(template.static["profile"]))
    resource["identifier"] = [{"system": BHI_IDENTIFIER, "value": identifier}]
    resource["status"] = _DEFAULT_STATUS[kind]
    resource["intent"] = _DEFAULT_INTENT[kind]
    for name in _STATIC_FIELDS[kind]:
        if name in template.static:
            resource[name] = _copy(template.static[name])
    resource[_PATIENT_FIELD.get(kind, "subject")] = {"reference": run.timeline.patient}
    for path, expr in template.dynamic:
        result = expr.evaluate(variables)
        if not result:
            continue
        if path.endswith("[]"):  # a list element, set from the whole collection
            _set_path(resource, path[:-2], [_copy(v) for v in result])
            continue
        if len(result) > 1:
            raise WorkflowError(f"{action.id}: dynamicValue {path} gave {len(result)} values")
        value = result[0]
        # FHIRPath results may be the facts' own objects or a memoised result: never alias them.
        _set_path(resource, path, _copy(value) if isinstance(value, dict | list) else value)
    if "text" not in resource:
        resource["text"] = _narrative(template, resource)
    reason = (
        " ".join(_evaluate_strings(action.reason.evaluate(variables)))
        if action.reason
        else action.title
    )
    sources = (
        tuple(dict.fromkeys(_evaluate_strings(action.sources.evaluate(variables))))
        if action.sources
        else ()
    )
    run.outputs.append(_Output(action, identifier, resource, reason, sources))


def _run_action(action: Action, variables: dict[str, Any], run: _Run) -> None:
    items: list[Any] = [None]
    if action.for_each is not None:
        items = action.for_each.evaluate(variables)
    for item in items:
        scope = variables if item is None else {**variables, "item": item}
        bound = 0
        if action.variables:
            scope = dict(scope)
        holds = True
        for cond, needed in zip(action.conditions, action.variables_needed, strict=True):
            while bound < needed:  # bind variables lazily, in declaration order
                name, expr = action.variables[bound]
                scope[name] = expr.evaluate(scope)
                bound += 1
            if not truthy(cond.evaluate(scope)):
                holds = False
                break
        if not holds:
            continue
        for name, expr in action.variables[bound:]:
            scope[name] = expr.evaluate(scope)
        if action.template is not None:
            _build(action, scope, run)
        for child in action.children:
            _run_action(child, scope, run)


def _link(outputs: list[_Output]) -> None:
    """Cross-references between the outputs of one rule firing (see module docstring)."""
    careplans = [o for o in outputs if o.resource["resourceType"] == "CarePlan"]
    requests = [o for o in outputs if o.resource["resourceType"] == "ServiceRequest"]
    tasks = [o for o in outputs if o.resource["resourceType"] == "Task"]
    if careplans:
        plan = careplans[0]
        activity = plan.resource.setdefault("activity", [])
        for task in tasks:
            task.resource.setdefault("basedOn", []).append({"reference": plan.full_url})
            activity.append({"reference": {"reference": task.full_url}})
    if requests:
        for task in tasks:
            task.resource.setdefault("focus", {"reference": requests[0].full_url})


def _reconcile(output: _Output, existing: Mapping[str, Any]) -> None:
    """Turn a fresh output into an update of ``existing`` (or mark it skipped)."""
    if existing.get("status") in TERMINAL_STATUSES:
        output.skip = f"{existing.get('status')} (not reopened)"
        return
    merged = dict(existing)
    for name, value in output.resource.items():
        if name == "meta":  # the profile claim joins the record's own tags and version
            merged[name] = {**(existing.get("meta") or {}), **value}
        elif name != "status":
            merged[name] = value
    merged["id"] = existing.get("id")
    output.existing = dict(existing)
    output.resource = merged


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    strip = ("meta",)
    return {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def _deceased_reason(death: Mapping[str, Any]) -> str:
    when = f" on {death['date']}" if death.get("date") else ""
    return f"Patient deceased{when} (Patient.deceased[x]): no further BHI work"


def _close_for_deceased(
    timeline: Timeline, plan: PracticePlan, produced: set[str], result: Plan, validate: bool
) -> None:
    """A deceased patient: bhi-fhir's open Tasks are proposed for cancellation (statusReason
    says why) and the active BHI CarePlan for the plan's ``records.deceased_careplan_status``.

    Only once the death is on or before ``today`` (a deceasedBoolean without date counts);
    never a Task a rule produced in this run (a crisis screen newer than the recorded death
    fires: the record is stale), nor a resource without a server id (no update possible).
    """
    death = timeline.facts.get("deceased")
    if not isinstance(death, Mapping):
        return
    date = death.get("date")
    if isinstance(date, str) and date > str(timeline.facts.get("today")):
        return
    reason = _deceased_reason(death)
    source = timeline.patient
    careplan_status = plan.records.deceased_careplan_status
    for identifier, existing in sorted(timeline.existing.items()):
        kind = existing.get("resourceType")
        if identifier in produced or not existing.get("id"):
            continue
        if existing.get("status") in TERMINAL_STATUSES:
            continue
        resource = dict(existing)
        if kind == "Task":
            resource["status"] = "cancelled"
            resource["statusReason"] = {"text": reason}
            output = "deceased.cancel-task"
        elif (
            kind == "CarePlan"
            and careplan_status != "leave"
            and existing.get("status") == "active"
            and any(
                c.get("system") == SNOMED and c.get("code") == MENTAL_HEALTH_CARE_PLAN
                for cat in existing.get("category") or []
                if isinstance(cat, Mapping)
                for c in cat.get("coding") or []
                if isinstance(c, Mapping)
            )
        ):
            # R4 CarePlan has no statusReason: the reason goes to a note, the end to period.
            resource["status"] = careplan_status
            resource["note"] = [*(existing.get("note") or []), {"text": reason}]
            if isinstance(date, str):
                resource["period"] = {**(existing.get("period") or {}), "end": date}
            output = "deceased.close-careplan"
        else:
            continue
        if validate:
            try:
                validate_resource(resource)
            except ResourceInvalid as exc:
                where = f"deceased for {timeline.patient}: {identifier}"
                raise WorkflowError(f"{where}: {exc}") from None
        version = (existing.get("meta") or {}).get("versionId")
        result.writes.append(
            PlannedWrite(
                rule="deceased",
                output=output,
                identifier=identifier,
                method="update",
                resource=resource,
                reason=f"{reason}: {kind} {resource['status']}",
                sources=(source,),
                full_url=f"{kind}/{existing['id']}",
                if_match=etag(version) if version else None,
            )
        )


def apply(
    protocol: Protocol,
    timeline: Timeline,
    plan: PracticePlan,
    *,
    caseloads: Mapping[str, int] | None = None,
    validate: bool = True,
) -> Plan:
    """The writes the protocol intends for one patient.

    ``caseloads`` (care-manager reference → active patients) picks the care manager for a new
    enrollment (the lowest caseload relative to capacity, :func:`assign_care_manager`). The
    engine is pure, so the shell counts them over *all* patients: :func:`count_caseloads` over
    the active BHI CarePlans, plus the enrollments planned so far in the same run
    (``bhi-fhir apply`` does both from its input). Without it every manager counts as empty
    and new enrollments go to the first care manager with room.

    Inputs are not modified: FHIRPath reads the facts in place (no copy per patient) and the
    engine's own JSON view of the plan, and values taken from them into a resource are copied.
    With ``validate`` every resource written is checked with fhir.resources R4B.
    """
    contributors = timeline.facts.get("enrollment", {}).get("contributors")
    manager = assign_care_manager(plan, caseloads, contributors)
    variables: dict[str, Any] = {
        "facts": timeline.facts,
        "plan": _view(plan),  # already a private copy, made once per plan
        "careManager": {"reference": manager.reference, "display": manager.display},
    }
    result = Plan(patient=timeline.patient)
    produced: set[str] = set()
    for action in protocol.actions:
        run = _Run(timeline)
        try:
            _run_action(action, variables, run)
        except ExpressionError as exc:
            raise WorkflowError(f"rule {action.id} for {timeline.patient}: {exc}") from None
        # One rule firing may run for several items (crisis: one per response); link per key.
        groups: dict[str, list[_Output]] = {}
        for output in run.outputs:
            existing = timeline.existing.get(output.identifier)
            output.full_url = (
                f"{existing['resourceType']}/{existing['id']}"
                if existing is not None and existing.get("id")
                else full_url_for(output.identifier)
            )
            groups.setdefault(output.identifier.split(":", 1)[1], []).append(output)
        for group in groups.values():
            _link(group)
        for output in run.outputs:
            produced.add(output.identifier)
            existing = timeline.existing.get(output.identifier)
            if existing is not None and existing.get("id"):
                _reconcile(output, existing)
            elif existing is not None and _same(output.resource, existing):
                # Read back from an earlier transaction Bundle (no server id yet): that
                # conditional create already carries this write.
                output.skip = "already planned (conditional create)"
            if output.skip is None and validate:
                try:
                    validate_resource(output.resource)
                except ResourceInvalid as exc:
                    raise WorkflowError(
                        f"rule {action.id} for {timeline.patient}: {output.identifier}: {exc}"
                    ) from None
            if output.skip:
                result.skipped.append(Skipped(action.id, output.identifier, output.skip))
                continue
            if_match: str | None = None
            if output.existing is not None:
                if _same(output.resource, output.existing):
                    result.skipped.append(Skipped(action.id, output.identifier, "unchanged"))
                    continue
                version = (output.existing.get("meta") or {}).get("versionId")
                if_match = etag(version) if version else None
            result.writes.append(
                PlannedWrite(
                    rule=action.id,
                    output=output.action.id,
                    identifier=output.identifier,
                    method="create" if output.existing is None else "update",
                    resource=output.resource,
                    reason=output.reason,
                    sources=output.sources,
                    full_url=output.full_url,
                    if_match=if_match,
                )
            )
    # Feedback Tasks on the plan's cadence (patient experience survey; workflow.feedback).
    patient_feedback(timeline, plan, manager, result, validate=validate)
    _close_for_deceased(timeline, plan, produced, result, validate)
    return result
