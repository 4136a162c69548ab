"""The one Provenance builder: what bhi-fhir wrote, when, for which rule and from what. Pure.

Billing (the month's Encounter), sync and the app (the protocol's writes) all record their
writes with :func:`provenance`. ``meta.tag`` carries the write's idempotency key under
``BHI_IDENTIFIER``, so a conditional create (``ifNoneExist: _tag=…``) never records a write
twice and a lost answer can be searched for. Shape: FHIR R4 Provenance
(https://hl7.org/fhir/R4/provenance.html); ``activity`` from v3-DataOperation, each agent's
``type`` from provenance-participant-type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Final

from bhi_fhir.codes import BHI_IDENTIFIER, PROVENANCE_PROFILE
from bhi_fhir.fhirjson import Resource, ResourceDict

__all__ = ["DATA_OPERATION", "PROVENANCE_PARTICIPANT", "agent", "provenance"]

PROVENANCE_PARTICIPANT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def agent(who: Resource, role: str = "assembler", on_behalf_of: str | None = None) -> ResourceDict:
    """One ``Provenance.agent``: ``who`` in the participant ``role``, optionally on behalf of
    a reference (the billing practitioner, the signed-in user)."""
    out: ResourceDict = {
        "type": {"coding": [{"system": PROVENANCE_PARTICIPANT, "code": role}]},
        "who": dict(who),
    }
    if on_behalf_of is not None:
        out["onBehalfOf"] = {"reference": on_behalf_of}
    return out


def provenance(
    targets: Sequence[str],
    *,
    key: str,
    operation: str,
    recorded: str,
    agents: Sequence[Resource],
    sources: Iterable[str] = (),
    reason: Resource | None = None,
    summary: str | None = None,
    occurred: tuple[str, str] | None = None,
) -> ResourceDict:
    """A Provenance of ``targets`` (fullUrls in the same transaction, or Type/id).

    ``key`` the idempotency tag; ``operation`` the v3-DataOperation code (CREATE, UPDATE);
    ``recorded`` an instant; ``sources`` the resources read (``entity`` role source, each
    once, none → no ``entity``); ``reason`` one CodeableConcept; ``summary`` the narrative;
    ``occurred`` the period (start, end) the activity covers."""
    resource: ResourceDict = {
        "resourceType": "Provenance",
        "meta": {"profile": [PROVENANCE_PROFILE], "tag": [{"system": BHI_IDENTIFIER, "code": key}]},
    }
    if summary is not None:
        resource["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{escape(summary)}</div>',
        }
    resource["target"] = [{"reference": t} for t in targets]
    if occurred is not None:
        resource["occurredPeriod"] = {"start": occurred[0], "end": occurred[1]}
    resource["recorded"] = recorded
    resource["activity"] = {"coding": [{"system": DATA_OPERATION, "code": operation}]}
    if reason is not None:
        resource["reason"] = [dict(reason)]
    resource["agent"] = [dict(a) for a in agents]
    entities = [{"role": "source", "what": {"reference": s}} for s in dict.fromkeys(sources)]
    if entities:
        resource["entity"] = entities
    return resource
