"""A Plan of intended writes, and its FHIR R4 transaction Bundle. Pure.

Each write is idempotent (design.md decision 3): a create is conditional on the business
identifier (``ifNoneExist: identifier=<system>|<value>``), an update is versioned
(``ifMatch: W/"<versionId>"``). Re-running, retrying or crashing mid-run never duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.timeline import full_url_for

__all__ = [
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
            if_none_exist=identifier_condition(self.identifier) if self.method == "create"
            else None,
            if_match=self.if_match,
        )


def identifier_condition(identifier: str) -> str:
    """The ``ifNoneExist`` search for a business identifier value under BHI_IDENTIFIER."""
    return "identifier=" + quote(f"{BHI_IDENTIFIER}|{identifier}", safe="/:")


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
    entries = [write.bundle_entry() for plan in items for write in plan.writes]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
