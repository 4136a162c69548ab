"""A Plan of intended writes, and its FHIR R4 transaction Bundle. Pure.

Each write is idempotent: a create is conditional on the business
identifier and the patient (``ifNoneExist: identifier=<system>|<value>&patient=Patient/<id>``),
an update is versioned (``ifMatch: W/"<versionId>"``). Re-running, retrying or crashing mid-run
never duplicates.

The patient is part of the condition because response-derived identifiers name the response
by id (``crisis-assessment:QuestionnaireResponse/7/_history/1``), and two exports merged can
hold two patients' responses with the same id: on the identifier alone the second patient's
crisis create would find the first patient's resource and never be written. Identifier
values stay as they were, so resources already written are still found (same identifier,
same patient); and in one Bundle the second patient's colliding ``fullUrl`` is made its own
(:func:`to_transaction_bundle`), since a transaction must not repeat one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.timeline import full_url_for, patient_of

__all__ = [
    "BundleEntries",
    "Plan",
    "PlannedWrite",
    "Skipped",
    "full_url_for",
    "identifier_condition",
    "to_transaction_bundle",
    "transaction_entry",
]

Method = Literal["create", "update"]


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One resource to create or update, and why."""

    rule: str  # the PlanDefinition action id (engage, crisis-assessment, ...)
    output: str  # the action that produced it (the rule, or a child such as enroll.careplan)
    identifier: str  # value under system BHI_IDENTIFIER
    method: Method
    resource: dict[str, Any]
    reason: str
    sources: tuple[str, ...]  # versioned references the write derives from (Provenance)
    full_url: str
    if_match: str | None = None  # W/"<versionId>" for updates

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def priority(self) -> str | None:
        value = self.resource.get("priority")
        return value if isinstance(value, str) else None

    def bundle_entry(self) -> dict[str, Any]:
        return transaction_entry(
            self.resource, self.full_url, self.method,
            if_none_exist=identifier_condition(self.identifier, patient_of(self.resource))
            if self.method == "create" else None,
            if_match=self.if_match,
        )


def identifier_condition(identifier: str, patient: str | None = None) -> str:
    """The ``ifNoneExist`` search for a business identifier value under BHI_IDENTIFIER, and
    for the patient (``Patient/<id>``) the resource belongs to, when it belongs to one."""
    condition = "identifier=" + quote(f"{BHI_IDENTIFIER}|{identifier}", safe="/:")
    if patient:
        condition += "&patient=" + quote(patient, safe="/")
    return condition


def transaction_entry(
    resource: dict[str, Any],
    full_url: str,
    method: Method,
    *,
    if_none_exist: str | None = None,
    if_match: str | None = None,
) -> dict[str, Any]:
    """One transaction entry: ``POST Type`` (conditional when ``if_none_exist``) or a
    ``PUT Type/id`` (versioned when ``if_match``). The one builder for workflow and sync."""
    kind = str(resource["resourceType"])
    request: dict[str, Any]
    if method == "create":
        request = {"method": "POST", "url": kind}
        if if_none_exist:
            request["ifNoneExist"] = if_none_exist
    else:
        request = {"method": "PUT", "url": f"{kind}/{resource['id']}"}
        if if_match:
            request["ifMatch"] = if_match
    return {"fullUrl": full_url, "resource": resource, "request": request}


@dataclass(frozen=True, slots=True)
class Skipped:
    """An output whose rule fired but which needs no write, and why."""

    rule: str
    identifier: str
    why: str  # "unchanged" | "completed" (terminal status: not reopened) | ...


@dataclass(slots=True)
class Plan:
    patient: str
    writes: list[PlannedWrite] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def creates(self) -> list[PlannedWrite]:
        return [w for w in self.writes if w.method == "create"]

    @property
    def updates(self) -> list[PlannedWrite]:
        return [w for w in self.writes if w.method == "update"]

    def rules(self) -> list[str]:
        return list(dict.fromkeys(w.rule for w in self.writes))


def to_transaction_bundle(plans: Plan | Iterable[Plan]) -> dict[str, Any]:
    """One FHIR R4 transaction Bundle with every write of ``plans``."""
    items = [plans] if isinstance(plans, Plan) else list(plans)
    entries_of = BundleEntries()
    entries = [entry for plan in items for entry in entries_of(plan)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


class BundleEntries:
    """The transaction entries of one plan after another, for one Bundle: a ``fullUrl`` that
    another patient's write in the Bundle already uses (the same identifier: response ids
    reused across merged exports) is renamed for this patient, with the references to it
    among this patient's writes. Keeps one ``fullUrl`` → patient pair per write seen."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    def __call__(self, plan: Plan) -> list[dict[str, Any]]:
        entries = [write.bundle_entry() for write in plan.writes]
        taken = {e["fullUrl"] for e in entries
                 if self._owners.get(e["fullUrl"], plan.patient) != plan.patient}
        if taken:
            names = {url: _patient_url(url, plan.patient) for url in taken}
            entries = [_renamed(entry, names) for entry in entries]
        for entry in entries:
            self._owners.setdefault(entry["fullUrl"], plan.patient)
        return entries


def _patient_url(full_url: str, patient: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{full_url}|{patient}')}"


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every string in ``names`` (a fullUrl, a reference to it) replaced."""
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value
