"""The sync's context read asks only for what the timeline and the scorer read: of Encounters
and Procedures the care-manager contacts (BHI_ACTIVITY care-management-contact, the billing
ledger's entries), of Observations the instruments' screening codes and bhi-fhir's own; years
of an EHR's visits, procedures and other surveys stay on the server."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT
from bhi_fhir.fhir import FhirClient
from bhi_fhir.instruments.screens import SCREEN_CODES
from bhi_fhir.sync.source import Changed, fetch_contexts, fetch_server_info
from tests.fhir.capability import capability_statement

BASE = "http://fhir.test/fhir"
TYPES = ("Patient", "QuestionnaireResponse", "Task", "ServiceRequest", "CarePlan", "Encounter",
         "Observation", "DiagnosticReport", "Provenance", "Consent", "Procedure")


async def _batch_urls() -> dict[str, dict[str, list[str]]]:
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=capability_statement(types=TYPES))
        bundle: dict[str, Any] = json.loads(request.content)
        seen.extend(e["request"]["url"] for e in bundle["entry"])
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": []},
             "response": {"status": "200 OK"}} for _ in bundle["entry"]]})

    async with FhirClient(BASE, transport=httpx.MockTransport(server)) as client:
        info = await fetch_server_info(client)
        await fetch_contexts(client, info, ["Patient/a", "Patient/b"], Changed())
    out: dict[str, dict[str, list[str]]] = {}
    for url in seen:
        kind, _, query = url.partition("?")
        params = parse_qs(urlsplit("?" + query).query)
        key = kind if kind not in out else f"{kind}#{len([k for k in out if k.startswith(kind)])}"
        out[key] = params
    return out


async def test_encounters_and_procedures_are_care_manager_contacts_only() -> None:
    urls = await _batch_urls()
    contact = f"{BHI_ACTIVITY}|{CARE_MANAGEMENT_CONTACT}"
    assert urls["Encounter"]["type"] == [contact]
    assert urls["Procedure"]["code"] == [contact]
    for kind in ("CarePlan", "Task", "ServiceRequest", "Consent", "QuestionnaireResponse"):
        assert set(urls[kind]) == {"patient", "_count"}, kind  # read whole: the workflow's


async def test_observations_are_screens_by_code_and_our_own() -> None:
    urls = await _batch_urls()
    observations = [p for k, p in urls.items() if k.startswith("Observation")]
    own = [p for p in observations if "identifier" in p]
    screens = [p for p in observations if "code" in p]
    assert len(own) == 1 and own[0]["_elements"] == ["identifier"]
    assert len(screens) == 1 and "category" not in screens[0]
    assert set(screens[0]["code"][0].split(",")) == set(SCREEN_CODES)
    assert {"44261-6", "44249-1", "44260-8", "70274-6"} <= SCREEN_CODES  # PHQ-9 total, panel,
    # item 9 (a crisis is read from it), GAD-7 total: Kroenke 2001; Spitzer 2006 (LOINC)
