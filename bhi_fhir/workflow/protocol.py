"""Load the protocol: PlanDefinitions + ActivityDefinitions → compiled actions. Pure.

A PlanDefinition's top-level actions are the rules (``engage``, ``crisis-assessment``, ...).
An action fires when every ``applicability`` condition yields ``true``; conditions are checked
in order and the first that fails stops the rest, so cheap conditions go first.

Per action, these extensions carry what FHIR has no element for:

``http://hl7.org/fhir/StructureDefinition/variable`` (valueExpression with ``name``)
    binds ``%name`` for the action's conditions, its children and its outputs.
``{BHI}/StructureDefinition/for-each`` (valueExpression)
    runs the action once per item of the collection, bound as ``%item`` (the crisis rules
    run once per response: a crisis is never deduplicated across responses).
``{BHI}/StructureDefinition/identifier-key`` (valueExpression → string)
    the source resource/version + period part of the output's business identifier.
``{BHI}/StructureDefinition/sources`` (valueExpression → references)
    the resources the output was derived from (for Provenance).
``{BHI}/StructureDefinition/reason`` (valueExpression → string)
    the readable reason shown to people.

An action with ``definitionCanonical`` produces one resource from that ActivityDefinition;
an action with child actions produces one per child (``enroll`` → CarePlan + Tasks). Children
inherit key, sources and reason from their rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhi_fhir.codes import BHI_BASE
from bhi_fhir.exit_codes import EXIT_CONFIG
from bhi_fhir.paths import profiles_dir
from bhi_fhir.workflow.fhirpath import Expression, ExpressionError, expression

__all__ = [
    "EXT_FOR_EACH",
    "EXT_IDENTIFIER_KEY",
    "EXT_REASON",
    "EXT_SOURCES",
    "EXT_VARIABLE",
    "Action",
    "Protocol",
    "ProtocolError",
    "Template",
    "default_protocol",
    "load_protocol",
]

EXT_VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
EXT_FOR_EACH = f"{BHI_BASE}/StructureDefinition/for-each"
EXT_IDENTIFIER_KEY = f"{BHI_BASE}/StructureDefinition/identifier-key"
EXT_SOURCES = f"{BHI_BASE}/StructureDefinition/sources"
EXT_REASON = f"{BHI_BASE}/StructureDefinition/reason"

_KINDS = ("Task", "ServiceRequest", "CarePlan")


class ProtocolError(ValueError):
    """A PlanDefinition/ActivityDefinition the engine cannot run; says where and why."""

    exit_code = EXIT_CONFIG  # a protocol that cannot be used is configuration


@dataclass(frozen=True, slots=True)
class Template:
    """An ActivityDefinition, compiled: static fields plus (path, expression) dynamicValues."""

    url: str
    kind: str
    title: str
    static: Mapping[str, Any]
    dynamic: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    rule: str  # the top-level action id this action belongs to
    title: str
    variables: tuple[tuple[str, Expression], ...]
    for_each: Expression | None
    conditions: tuple[Expression, ...]
    template: Template | None
    children: tuple[Action, ...]
    # For each condition, how many of ``variables`` (in order) must be bound before it runs:
    # a variable is only evaluated once a condition needs it (cheap conditions go first).
    variables_needed: tuple[int, ...]
    key: Expression | None
    sources: Expression | None
    reason: Expression | None


@dataclass(frozen=True, slots=True)
class Protocol:
    plandefinitions: tuple[str, ...]  # canonical URLs, for the run report
    actions: tuple[Action, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)


def _fhirpath(where: str, value: Any) -> Expression:
    if not isinstance(value, Mapping) or value.get("language") != "text/fhirpath":
        raise ProtocolError(f"{where}: expression must have language text/fhirpath")
    text = value.get("expression")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError(f"{where}: empty expression")
    try:
        return expression(text)
    except ExpressionError as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def _extension(action: Mapping[str, Any], url: str, where: str) -> Expression | None:
    for ext in action.get("extension") or []:
        if ext.get("url") == url:
            return _fhirpath(f"{where}.extension[{url}]", ext.get("valueExpression"))
    return None


def _template(definition: Mapping[str, Any]) -> Template:
    url = str(definition.get("url"))
    kind = definition.get("kind")
    if kind not in _KINDS:
        raise ProtocolError(f"ActivityDefinition {url}: kind {kind!r} not supported ({_KINDS})")
    static: dict[str, Any] = {}
    for key in ("code", "priority", "intent", "description", "profile"):
        if key in definition:
            static[key] = definition[key]
    dynamic = []
    for index, dv in enumerate(definition.get("dynamicValue") or []):
        path = dv.get("path")
        if not isinstance(path, str) or not path:
            raise ProtocolError(f"ActivityDefinition {url}: dynamicValue[{index}] has no path")
        dynamic.append((path, _fhirpath(f"{url} dynamicValue {path}", dv.get("expression"))))
    return Template(
        url=url,
        kind=str(kind),
        title=str(definition.get("title") or definition.get("name") or url),
        static=static,
        dynamic=tuple(dynamic),
    )


def _action(
    raw: Mapping[str, Any],
    rule: str | None,
    templates: Mapping[str, Template],
    where: str,
    inherited: tuple[Expression | None, Expression | None, Expression | None],
) -> Action:
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise ProtocolError(f"{where}: action without id")
    where = f"{where}.action[{ident}]"
    rule = rule or ident
    variables = []
    for ext in raw.get("extension") or []:
        if ext.get("url") == EXT_VARIABLE:
            value = ext.get("valueExpression") or {}
            name = value.get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(f"{where}: variable without a name")
            variables.append((name, _fhirpath(f"{where}.variable[{name}]", value)))
    conditions = []
    for index, cond in enumerate(raw.get("condition") or []):
        if cond.get("kind") != "applicability":
            continue
        conditions.append(_fhirpath(f"{where}.condition[{index}]", cond.get("expression")))
    key = _extension(raw, EXT_IDENTIFIER_KEY, where) or inherited[0]
    sources = _extension(raw, EXT_SOURCES, where) or inherited[1]
    reason = _extension(raw, EXT_REASON, where) or inherited[2]
    template = None
    canonical = raw.get("definitionCanonical")
    if canonical is not None:
        template = templates.get(str(canonical).split("|")[0])
        if template is None:
            raise ProtocolError(f"{where}: no ActivityDefinition {canonical!r}")
        if key is None:
            raise ProtocolError(f"{where}: an output needs an identifier-key extension")
    names = [name for name, _ in variables]
    needed = []
    for cond in conditions:
        used = [i + 1 for i, name in enumerate(names) if re.search(rf"%{name}\b", cond.text)]
        needed.append(max(used, default=0))
    children = tuple(
        _action(child, rule, templates, where, (key, sources, reason))
        for child in raw.get("action") or []
    )
    return Action(
        id=ident,
        rule=rule,
        title=str(raw.get("title") or ident),
        variables=tuple(variables),
        for_each=_extension(raw, EXT_FOR_EACH, where),
        conditions=tuple(conditions),
        template=template,
        children=children,
        variables_needed=tuple(needed),
        key=key,
        sources=sources,
        reason=reason,
    )


def default_protocol(root: Path | None = None) -> Protocol:
    """The protocol bhi-fhir ships: every PlanDefinition and ActivityDefinition under
    ``profiles/`` (:func:`bhi_fhir.paths.profiles_dir`, or ``root``), compiled once per call."""
    root = root or profiles_dir()
    if not (root / "plandefinitions").is_dir():
        raise ProtocolError(f"no protocol at {root} (plandefinitions/ expected)")
    files = sorted((root / "plandefinitions").glob("*.json")) + sorted(
        (root / "activitydefinitions").glob("*.json")
    )
    return load_protocol(json.loads(p.read_text(encoding="utf-8")) for p in files)


def load_protocol(resources: Iterable[Mapping[str, Any]]) -> Protocol:
    """Compile every PlanDefinition among ``resources`` against the ActivityDefinitions there."""
    items: Sequence[Mapping[str, Any]] = list(resources)
    templates = {
        str(r.get("url")): _template(r)
        for r in items
        if r.get("resourceType") == "ActivityDefinition"
    }
    urls: list[str] = []
    actions: list[Action] = []
    seen: set[str] = set()
    for resource in items:
        if resource.get("resourceType") != "PlanDefinition":
            continue
        url = str(resource.get("url") or resource.get("id"))
        urls.append(url)
        for raw in resource.get("action") or []:
            action = _action(raw, None, templates, f"PlanDefinition {url}", (None, None, None))
            if action.id in seen:
                raise ProtocolError(f"PlanDefinition {url}: action id {action.id!r} repeated")
            seen.add(action.id)
            actions.append(action)
    if not urls:
        raise ProtocolError("no PlanDefinition found")
    return Protocol(plandefinitions=tuple(urls), actions=tuple(actions))
