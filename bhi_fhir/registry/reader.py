"""The registry's read from a FHIR server: who is enrolled, and many patients' records at once.

Used by the app's live registry and by the read model's refreshes (``sync``, the notification
receiver, the app's writes, a refresh on demand), so the store is filled from exactly the
records the live page reads. Requests, for ``p`` patients::

    GET  CarePlan?category=…|718347000&status=active&_count=200        (paged)  the enrolled
         (+ one search per identifier system or canonical the practice plan's [enrollment] adds)
    POST base (batch: Patient?_id=a,b,… and one patient-compartment search per type with the
         page's patients OR-ed, subject=Patient/a,Patient/b,…)          ⌈p/50⌉ (+ next pages)
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from bhi_fhir.codes import LOINC
from bhi_fhir.fhir import BadRequest, FhirClient, InvalidResponse, ServerError
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import entry_answer, patient_of
from bhi_fhir.instruments import INSTRUMENTS
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule, is_enrollment

__all__ = [
    "MENTAL_HEALTH_CARE_PLAN",
    "PATIENT_SEARCHES",
    "REGISTRY_PAGE",
    "SEARCH_FILTERS",
    "enrolled_ids",
    "enrollment_searches",
    "read_records",
]


MENTAL_HEALTH_CARE_PLAN = "http://snomed.info/sct|718347000"

# What the patient view reads, one search each (the patient-compartment search parameter).
PATIENT_SEARCHES: tuple[tuple[str, str], ...] = (
    ("QuestionnaireResponse", "subject"),
    ("CarePlan", "subject"),
    ("Task", "patient"),
    ("ServiceRequest", "subject"),
    ("Encounter", "subject"),
    ("Consent", "patient"),
    ("Procedure", "subject"),
    ("Observation", "subject"),  # screens stored as Observations (SEARCH_FILTERS)
    ("DiagnosticReport", "subject"),  # Synthea's report around a screen's total
)
# Only screens: survey Observations (US Core screening assessments, Synthea totals, our own),
# not the patient's vitals and labs; reports with a screening panel code. With the report the
# screen is named as apply and sync name it (the rules' identifier keys agree).
SEARCH_FILTERS: dict[str, dict[str, str]] = {
    "Observation": {"category": "survey"},
    "DiagnosticReport": {"code": ",".join(
        f"{LOINC}|{s.panel_code}" for s in INSTRUMENTS if s.panel_code)},
}

REGISTRY_PAGE = 50  # patients per batch of registry searches (keeps URLs short)


def enrollment_searches(rule: EnrollmentRule = OWN_ENROLLMENT) -> list[dict[str, str]]:
    """The CarePlan searches that find every enrollment ``rule`` recognises: the mental-health
    category (bhi-fhir's own plans carry it), and one search per identifier system or canonical
    the practice adds, since an EHR's own BHI CarePlan need not carry that category."""
    active = {"status": "active", "_count": "200"}
    searches = [{"category": MENTAL_HEALTH_CARE_PLAN, **active}]
    for system in sorted(rule.identifier_systems - OWN_ENROLLMENT.identifier_systems):
        searches.append({"identifier": f"{system}|", **active})
    for canonical in sorted(rule.instantiates - OWN_ENROLLMENT.instantiates):
        searches.append({"instantiates-canonical": canonical, **active})
    return searches


async def enrolled_ids(client: FhirClient, rule: EnrollmentRule = OWN_ENROLLMENT) -> list[str]:
    """Ids of patients enrolled: the practice's own active BHI CarePlan (``rule``), not another
    service's mental-health care plan."""
    ids: list[str] = []
    for params in enrollment_searches(rule):
        async for plan in client.search("CarePlan", params):
            ref = patient_of(plan) if is_enrollment(plan, rule) else None
            if ref and ref.split("/", 1)[1] not in ids:
                ids.append(ref.split("/", 1)[1])
    return ids


async def read_records(client: FhirClient, patient_ids: list[str]) -> dict[str, list[Resource]]:
    """Each patient's record (the Patient first): one batch Bundle per page of patients, their
    Patient resources (``_id``) and each patient-compartment search with the page's patients
    OR-ed (``subject=Patient/a,…``); further result pages are followed. A server refusing batch
    gets the same searches one by one (still per page of patients, not per patient). A patient
    the server does not return is left out."""
    found: dict[str, list[Resource]] = {i: [] for i in patient_ids}
    patients: dict[str, Resource] = {}
    for start in range(0, len(patient_ids), REGISTRY_PAGE):
        page = patient_ids[start : start + REGISTRY_PAGE]
        refs = quote(",".join(f"Patient/{i}" for i in page), safe="/,")
        urls = [f"Patient?_id={quote(','.join(page), safe=',')}&_count={len(page)}"] + [
            f"{kind}?{param}={refs}&_count=1000"
            + "".join(f"&{k}={quote(v, safe=',/:')}"
                      for k, v in SEARCH_FILTERS.get(kind, {}).items())
            for kind, param in PATIENT_SEARCHES
        ]
        for resource in await _search_all(client, urls):
            if resource.get("resourceType") == "Patient":
                patients[str(resource.get("id"))] = resource
                continue
            ref = patient_of(resource)
            if ref and ref.split("/", 1)[1] in found:
                found[ref.split("/", 1)[1]].append(resource)
    return {i: [patients[i], *found[i]] for i in patient_ids if i in patients}


async def _search_all(client: FhirClient, urls: list[str]) -> list[Resource]:
    bundles: list[Resource] = []
    try:
        batch = await client.batch(
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
            }
        )
        entries = batch.get("entry") or []
        if len(entries) != len(urls) or not all(
            entry_answer(e).ok
            and isinstance(e.get("resource"), dict)
            for e in entries
        ):
            raise InvalidResponse("batch search answered with errors")
        for entry in entries:
            bundles.append(entry["resource"])
            link = next(
                (
                    lk.get("url")
                    for lk in entry["resource"].get("link") or []
                    if lk.get("relation") == "next"
                ),
                None,
            )
            if link:
                bundles += [b async for b in client.search_bundle(str(link))]
    except (BadRequest, ServerError, InvalidResponse):
        bundles = []

        async def collect(url: str) -> list[Resource]:
            return [b async for b in client.search_bundle(url)]

        pages = await asyncio.gather(*(collect(u) for u in urls))
        bundles = [b for group in pages for b in group]
    return [
        e["resource"]
        for b in bundles
        for e in b.get("entry") or []
        if isinstance(e.get("resource"), dict)
        and (e.get("search") or {}).get("mode", "match") == "match"
    ]
