"""The app's own writes as transaction Bundles, each with its Provenance.

Every write the app makes — logged time, consent, a task update, an applied workflow plan — goes
to the server as one transaction: the resource and a Provenance for it, so there is never a
write without its record of who made it, nor a Provenance for a write that failed.

Provenance follows the sync/billing convention (bhi_fhir/billing/encounter.py,
bhi_fhir/sync/planning.py): R4 Provenance has no ``identifier``, so it carries a deterministic
key in ``meta.tag`` (system BHI_IDENTIFIER) and is created with ``ifNoneExist: _tag=…`` — a
retried or repeated transaction never duplicates it. Agents: the signed-in user (``fhirUser``,
from the verified id_token) as ``author``, and the app itself as an identifier-only Device
reference (``assembler``), so the server needs no Device resource.

Creates are conditional on a business identifier (``ifNoneExist: identifier=…``), updates are
versioned (``ifMatch``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import entry_answers, etag
from bhi_fhir.provenance import agent
from bhi_fhir.sync.planning import provenance_for
from bhi_fhir.workflow.plan import identifier_condition, transaction_entry

APP_DEVICE: Resource = {
    "type": "Device",
    "identifier": {"system": BHI_IDENTIFIER, "value": "bhi-fhir-smart-app"},
    "display": "bhi-fhir SMART app",
}
APP_RULE = "app"  # Provenance.reason code (bhi-rule) for a clinician's action in the app
_USER_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person")
_NS = uuid.uuid5(uuid.NAMESPACE_URL, f"{BHI_IDENTIFIER}/smart-app")


def full_url(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, key)}"


def user_reference(fhir_user: str | None, iss: str | None) -> str | None:
    """``fhirUser`` as a reference on this server (``Practitioner/123``), or None.

    An absolute ``fhirUser`` on the launch's own FHIR base is made relative; one naming another
    server (or not a user type) is not written as an agent.
    """
    if not fhir_user:
        return None
    ref = fhir_user
    if iss and ref.startswith(iss.rstrip("/") + "/"):
        ref = ref[len(iss.rstrip("/")) + 1 :]
    kind, _, ident = ref.partition("/")
    if kind not in _USER_TYPES or not ident or "/" in ident.split("/_history")[0]:
        return None
    return ref


def provenance_entry(
    targets: Sequence[str],
    *,
    key: str,
    reason: str,
    operation: Literal["CREATE", "UPDATE"],
    user: str | None,
    recorded: datetime,
    sources: Sequence[str] = (),
    rule: str = APP_RULE,
) -> Resource:
    """A conditional-create Bundle entry for the Provenance of ``targets``."""
    write = provenance_for(
        targets,
        key=key,
        rule=rule,
        reason=reason,
        operation=operation,
        sources=sources,
        agent=APP_DEVICE,
        recorded=recorded.isoformat(timespec="seconds"),
    )
    resource = write.resource
    if user is not None:
        author = agent({"reference": user}, role="author")
        device = resource["agent"][0]
        device["onBehalfOf"] = {"reference": user}
        resource["agent"] = [author, device]
    return {
        "fullUrl": write.full_url,
        "resource": resource,
        "request": {"method": "POST", "url": "Provenance", "ifNoneExist": write.if_none_exist},
    }


def create_entry(resource: Resource, identifier: str) -> Resource:
    body = {k: v for k, v in resource.items() if k != "id"}
    return transaction_entry(
        body, full_url(f"{resource['resourceType']}/{identifier}"), "create",
        if_none_exist=identifier_condition(identifier),
    )


def update_entry(resource: Resource, if_match: str | None) -> Resource:
    kind, ident = resource["resourceType"], resource["id"]
    return transaction_entry(resource, full_url(f"{kind}/{ident}/update"), "update",
                             if_match=etag(if_match) if if_match else None)


def transaction(entries: Sequence[Resource]) -> Resource:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def create_with_provenance(
    resource: Resource, identifier: str, *, reason: str, user: str | None, recorded: datetime
) -> Resource:
    """A transaction creating ``resource`` once (conditional on ``identifier``), with its
    Provenance."""
    entry = create_entry(resource, identifier)
    return transaction(
        [
            entry,
            provenance_entry(
                [entry["fullUrl"]],
                key=f"provenance:{identifier}",
                reason=reason,
                operation="CREATE",
                user=user,
                recorded=recorded,
            ),
        ]
    )


def created(response: Resource, index: int = 0) -> bool:
    """Whether entry ``index`` of a transaction-response was newly created (201), not matched."""
    answers = entry_answers(response)
    return index >= len(answers) or answers[index].created
