"""References and identifiers of the resources the timeline reads and bhi-fhir generates: a
resource's reference and version, its bhi-fhir business identifier and the rule that made it,
a generated resource's stable ``urn:uuid``, and tolerant coding lookups."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhirjson import Resource

__all__ = [
    "bhi_identifier",
    "codings",
    "full_url_for",
    "has_code",
    "prune",
    "ref_of",
    "rule_of_identifier",
    "unversioned",
    "version_of",
    "versioned",
]


def rule_of_identifier(value: str) -> str:
    """``"enroll.careplan:…"`` → ``"enroll"``."""
    return value.split(":", 1)[0].split(".", 1)[0]



def full_url_for(identifier: str) -> str:
    """A stable ``urn:uuid`` for a generated resource not yet on a server (from its business
    identifier): its ``fullUrl`` in the transaction Bundle, and how a later run refers to it
    when it reads that Bundle back (the resource has no server id yet)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{BHI_IDENTIFIER}|{identifier}')}"



def bhi_identifier(resource: Resource) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping) and ident.get("system") == BHI_IDENTIFIER:
            value = ident.get("value")
            if isinstance(value, str):
                return value
    return None



def ref_of(resource: Resource) -> str:
    ident = resource.get("id")
    if ident is None and (value := bhi_identifier(resource)) is not None:
        return full_url_for(value)  # a conditional create read back from a Bundle
    return f"{resource.get('resourceType')}/{ident}"



def version_of(resource: Resource) -> str | None:
    meta = resource.get("meta")
    if isinstance(meta, Mapping):
        version = meta.get("versionId")
        if isinstance(version, str | int):
            return str(version)
    return None



def versioned(ref: str, version: str | None) -> str:
    return f"{ref}/_history/{version}" if version else ref



def unversioned(ref: str) -> str:
    return ref.split("/_history/", 1)[0]



def codings(concepts: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(concepts, Mapping):
        concepts = [concepts]
    if not isinstance(concepts, list):
        return
    for concept in concepts:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping):
                    yield coding



def has_code(concepts: Any, system: str | None, code: str) -> bool:
    return any(
        c.get("code") == code and (system is None or c.get("system") == system)
        for c in codings(concepts)
    )



def prune(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}
