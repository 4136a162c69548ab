"""A canned CapabilityStatement shaped like HAPI FHIR 8's, trimmed to what the profile reads."""

from __future__ import annotations

from typing import Any

ALL = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def resource(type_: str, interactions: list[str] = ALL, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "interaction": [{"code": c} for c in interactions],
        "versioning": "versioned-update",
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "searchParam": [
            {"name": "_tag", "type": "token"},
            {"name": "_lastUpdated", "type": "date"},
        ],
        **extra,
    }


def capability_statement(
    *,
    types: tuple[str, ...] = (
        "Patient",
        "QuestionnaireResponse",
        "Task",
        "ServiceRequest",
        "CarePlan",
        "Encounter",
        "Observation",
        "Provenance",
    ),
    system: tuple[str, ...] = ("transaction", "batch", "search-system", "history-system"),
    overrides: dict[str, dict[str, Any]] | None = None,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    overrides = overrides or {}
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": [resource(t, **overrides.get(t, {})) for t in types],
        "interaction": [{"code": c} for c in system],
    }
    if security:
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "software": {"name": "HAPI FHIR Server", "version": "8.8.0"},
        "rest": [rest],
    }
