"""The ``bill`` command's server side: a month's records read from a FHIR server (each patient's
Encounters only as far back as the rules look), the month's existing bills looked up by
identifier, and the planned writes sent (conditional create, versioned update with a new
Provenance, cancellation), a version clash re-read and retried once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bhi_fhir.billing.files import patients_with_time
from bhi_fhir.billing.ledger import (
    Month,
    PatientMonth,
    PatientRecord,
    history_start,
)
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.billing.writeback import (
    Write,
    plan_cancel,
    plan_write,
    write_bundle,
)
from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER, CARE_MANAGEMENT_CONTACT
from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.errors import Conflict, PreconditionFailed
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import entry_answers


async def records_from_server(
    fhir: FhirClient, month: Month, rules: BillingRules, only: set[str] | None = None
) -> list[PatientRecord]:
    """The month's patients, each with everything billing reads (see the module docstring)."""
    # A day of slack each side: the server compares dates in its own zone; the pure core
    # then keeps exactly the entries inside the practice's month.
    params = {
        "type": f"{BHI_ACTIVITY}|{CARE_MANAGEMENT_CONTACT}",
        "date": [f"ge{_day_before(month.first_day())}", f"lt{_day_after(month.last_day())}"],
        "_count": "200",
    }
    if only:
        params["patient"] = sorted(only)[0] if len(only) == 1 else ",".join(sorted(only))
    entries = [e async for e in fhir.search("Encounter", params)]
    wanted = patients_with_time(entries, month, rules)
    patients = sorted(wanted & only if only else wanted)
    records = await asyncio.gather(*(_record(fhir, p, month, rules) for p in patients))
    return list(records)


def _day_before(day: date) -> str:
    return (day - timedelta(days=1)).isoformat()


def _day_after(day: date) -> str:
    return (day + timedelta(days=1)).isoformat()


# A patient whose episode keeps reaching back is read in at most this many more windows.
_MAX_HISTORY_WINDOWS = 20


def first_window_start(month: Month, rules: BillingRules) -> datetime:
    """Where a patient's Encounter history is first read from: the episode look-back
    (``episode_gap_months``, NC Medicaid, AMA) and the initiating-visit window before it
    (``initiating_visit_lookback_days``, CMS MLN909432)."""
    tz = ZoneInfo(rules.timezone)
    return month.shift(-rules.episode_gap_months).start(tz) - timedelta(
        days=rules.initiating_visit_lookback_days
    )


async def _record(
    fhir: FhirClient, patient: str, month: Month, rules: BillingRules
) -> PatientRecord:
    pid = patient.split("/", 1)[1]

    async def all_of(kind: str, params: dict[str, Any]) -> list[Resource]:
        return [r async for r in fhir.search(kind, {**params, "_count": "200"})]

    def encounters(since: date, until: date) -> Any:
        return all_of(
            "Encounter",
            {"patient": patient, "date": [f"ge{_day_before(since)}", f"lt{_day_after(until)}"]},
        )

    fetched_from = first_window_start(month, rules)
    patient_resource = await fhir.read("Patient", pid)
    groups = await asyncio.gather(
        encounters(fetched_from.date(), month.last_day()),
        all_of("Consent", {"patient": patient}),
        all_of("CarePlan", {"patient": patient}),
        all_of("CareTeam", {"patient": patient}),
        all_of("Condition", {"patient": patient}),
        all_of("Coverage", {"beneficiary": patient}),
    )
    record = PatientRecord(patient)
    record.add(patient_resource)
    seen: set[str] = set()
    for group in groups:
        for resource in group:
            _add_once(record, resource, seen)
    # Episodes that reach further back (continuous service) need more history: NC Medicaid, AMA, CMS
    # MLN909432.
    for _ in range(_MAX_HISTORY_WINDOWS):
        needed = history_start(record, month, rules)
        if needed >= fetched_from:
            break
        for resource in await encounters(needed.date(), fetched_from.date()):
            _add_once(record, resource, seen)
        fetched_from = needed
    return record


def _add_once(record: PatientRecord, resource: Resource, seen: set[str]) -> None:
    key = f"{resource.get('resourceType')}/{resource.get('id')}"
    if resource.get("id") is not None and key in seen:
        return
    seen.add(key)
    record.add(resource)


# ------------------------------------------------------------------------------- writing


_LOOKUP_CHUNK = 50

# What a planned write is reported as when it is not (yet) sent.
PLANNED = {
    "create": "would-create",
    "update": "would-update",
    "stale": "billed-not-billable",
    "cancel": "would-cancel",
}


async def month_bills(fhir: FhirClient, month: Month, only: set[str] | None) -> list[Resource]:
    """Every billing Encounter the server holds for ``month`` (any identifier of ours, dated in
    the month), to find bills whose time entries were all deleted or entered in error."""
    params: dict[str, Any] = {
        "identifier": f"{BHI_IDENTIFIER}|",
        "date": [f"ge{month.first_day()}", f"le{month.last_day()}"],
        "_count": "200",
    }
    if only:
        params["patient"] = ",".join(sorted(only))
    return [r async for r in fhir.search("Encounter", params)]


async def existing_bills(fhir: FhirClient, months: Iterable[PatientMonth]) -> dict[str, Resource]:
    """identifier value → the billing Encounter the server holds, searched by identifier
    (``_count`` covers a chunk; ``Cache-Control: no-cache`` so a search cache cannot hide a
    bill written a moment ago)."""
    values = sorted({m.identifier_value for m in months})
    found: dict[str, Resource] = {}
    for i in range(0, len(values), _LOOKUP_CHUNK):
        chunk = set(values[i : i + _LOOKUP_CHUNK])
        params = {
            "identifier": ",".join(f"{BHI_IDENTIFIER}|{v}" for v in sorted(chunk)),
            "_count": str(4 * _LOOKUP_CHUNK),
        }
        response = await fhir.request(
            "GET", "Encounter", params=params, headers={"Cache-Control": "no-cache"}
        )
        bundle = response.json()
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Encounter":
                continue
            for ident in resource.get("identifier") or []:
                value = ident.get("value") if isinstance(ident, dict) else None
                if ident.get("system") == BHI_IDENTIFIER and value in chunk:
                    found.setdefault(value, resource)
    return found


def _created(response: Resource) -> str:
    """ "created" / "exists" from the Encounter entry of a create transaction's response."""
    for answer in entry_answers(response):
        if answer.location.startswith("Encounter/"):
            return "created" if answer.created else "exists"
    return "exists"


async def write_months(fhir: FhirClient, writes: list[Write], recorded: datetime) -> dict[str, str]:
    """Carry the planned writes out; identifier value → result.

    Creates go in one transaction (conditional creates: safe to repeat, and a concurrent run
    cannot duplicate them). Each update is its own transaction (``ifMatch``), so a version
    clash fails only that month: the bill is then re-read, re-planned and retried once; a
    second clash is reported as ``conflict``, not raised.
    """
    results: dict[str, str] = {}
    creates = [w for w in writes if w.action == "create"]
    if creates:
        bundle = write_bundle(creates)
        response = await fhir.transaction(bundle)
        answers = response.get("entry") or []
        for request, answer in zip(bundle["entry"], answers, strict=False):
            resource = request["resource"]
            if resource["resourceType"] == "Encounter":
                value = resource["identifier"][0]["value"]
                results[value] = _created({"entry": [answer]})
    # A bill another run created between our lookup and our create: bring it up to date too.
    raced = [w.month for w in creates if results.get(w.month.identifier_value) == "exists"]
    if raced:
        current = await existing_bills(fhir, raced)
        for month in raced:
            write = plan_write(month, current.get(month.identifier_value), recorded)
            if write.action == "update":
                results[month.identifier_value] = await _update(fhir, write, recorded)
    for write in writes:
        if write.action != "update":
            continue
        results[write.month.identifier_value] = await _update(fhir, write, recorded)
    return results


async def cancel_bill(fhir: FhirClient, write: Write, recorded: datetime) -> str:
    """Withdraw a bill with no time entry left; a version clash re-reads it and tries once
    more, then reports ``conflict``."""
    for attempt in range(2):
        try:
            await fhir.transaction(write_bundle([write]))
            return "cancelled"
        except (PreconditionFailed, Conflict):
            if attempt == 1:
                break
            current = (await existing_bills(fhir, [write.month])).get(write.month.identifier_value)
            if current is None:
                return "gone"
            write = plan_cancel(current, write.month.month, recorded)
            if write.action != "cancel":
                return "unchanged"
    return "conflict"


async def _update(fhir: FhirClient, write: Write, recorded: datetime) -> str:
    for attempt in range(2):
        try:
            await fhir.transaction(write_bundle([write]))
            return "updated"
        except (PreconditionFailed, Conflict):
            if attempt == 1:
                break
            current = (await existing_bills(fhir, [write.month])).get(write.month.identifier_value)
            write = plan_write(write.month, current, recorded)
            if write.action == "create":
                response = await fhir.transaction(write_bundle([write]))
                return _created(response)
            if write.action != "update":
                return PLANNED.get(write.action, write.action)
    return "conflict"
