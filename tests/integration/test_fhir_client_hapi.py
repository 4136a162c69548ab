"""FhirClient against a real FHIR server: paging, transactions, conditional and versioned writes."""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.fhir import FatalError, FhirClient, Gone, PreconditionFailed, ServerProfile
from tests.integration.conftest import CASE_SYSTEM, RunTag

pytestmark = pytest.mark.integration


def patient(tag: RunTag, case_id: str, family: str = "Testperson") -> dict[str, Any]:
    return tag.tag(
        {
            "resourceType": "Patient",
            "identifier": [{"system": CASE_SYSTEM, "value": case_id}],
            "name": [{"family": family, "given": ["Synthetic"]}],
            "gender": "unknown",
        }
    )


async def ids_for(fhir: FhirClient, resource_type: str, case_id: str) -> list[str]:
    found = fhir.search(resource_type, {"identifier": f"{CASE_SYSTEM}|{case_id}"})
    return [r["id"] async for r in found]


async def test_server_profile_says_the_workflow_can_run(fhir: FhirClient) -> None:
    profile = await ServerProfile.fetch(fhir)
    assert profile.fhir_version and profile.fhir_version.startswith("4.0")
    assert profile.transaction
    assert profile.readiness().can_run, profile.readiness().summary


async def test_paging_across_at_least_three_pages(
    fhir: FhirClient, run_tag: RunTag, case_id: str
) -> None:
    created = [await fhir.create(patient(run_tag, case_id, f"Page{i}")) for i in range(7)]
    params: dict[str, str | int] = {
        "_tag": run_tag.search_value,
        "identifier": f"{CASE_SYSTEM}|{case_id}",
        "_count": 2,
    }
    pages = [b async for b in fhir.search_bundle("Patient", params)]
    assert len(pages) >= 3
    assert all(len(p.get("entry", [])) <= 2 for p in pages)
    found = [r["id"] async for r in fhir.search("Patient", params)]
    assert sorted(found) == sorted(p["id"] for p in created)

    # A _lastUpdated window (how the sync asks for "what changed since the watermark").
    since = min(p["meta"]["lastUpdated"] for p in created)
    window: dict[str, str | int] = {**params, "_lastUpdated": f"ge{since}"}
    assert len([r async for r in fhir.search("Patient", window)]) == 7


async def test_transaction_writes_all_entries(
    fhir: FhirClient, run_tag: RunTag, case_id: str
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d9a3c5e-1111-4a5e-9a42-000000000001",
                "resource": patient(run_tag, case_id),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": run_tag.tag(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "identifier": [{"system": CASE_SYSTEM, "value": case_id}],
                        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                        "subject": {"reference": "urn:uuid:0d9a3c5e-1111-4a5e-9a42-000000000001"},
                        "valueInteger": 11,
                    }
                ),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    result = await fhir.transaction(bundle)
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert all(s.startswith("201") for s in statuses)
    assert len(await ids_for(fhir, "Patient", case_id)) == 1
    assert len(await ids_for(fhir, "Observation", case_id)) == 1


async def test_transaction_is_atomic(fhir: FhirClient, run_tag: RunTag, case_id: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": patient(run_tag, case_id),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": run_tag.tag(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "identifier": [{"system": CASE_SYSTEM, "value": case_id}],
                        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                        "subject": {"reference": f"Patient/missing-{case_id}"},  # does not exist
                        "valueInteger": 11,
                    }
                ),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    with pytest.raises(FatalError) as info:
        await fhir.transaction(bundle)
    assert info.value.status is not None and 400 <= info.value.status < 500
    assert str(info.value)  # the OperationOutcome gave a readable message
    # The good entry was rolled back with the bad one.
    assert await ids_for(fhir, "Patient", case_id) == []
    assert await ids_for(fhir, "Observation", case_id) == []


async def test_conditional_create_returns_the_existing_resource(
    fhir: FhirClient, run_tag: RunTag, case_id: str
) -> None:
    condition = {"identifier": f"{CASE_SYSTEM}|{case_id}"}
    first = await fhir.create(patient(run_tag, case_id), if_none_exist=condition)
    again = await fhir.create(patient(run_tag, case_id), if_none_exist=condition)
    assert again["id"] == first["id"]
    assert await ids_for(fhir, "Patient", case_id) == [first["id"]]


async def test_stale_if_match_is_precondition_failed(
    fhir: FhirClient, run_tag: RunTag, case_id: str
) -> None:
    created = await fhir.create(patient(run_tag, case_id))
    version = created["meta"]["versionId"]
    created["gender"] = "female"
    updated = await fhir.update(created, if_match=version)
    assert updated["meta"]["versionId"] != version
    created["gender"] = "male"
    with pytest.raises(PreconditionFailed):
        await fhir.update(created, if_match=version)
    current = await fhir.read("Patient", created["id"])
    assert current["gender"] == "female"  # the stale write did not land


def errors_in(outcome: dict[str, Any]) -> list[str]:
    return [
        str(i.get("diagnostics") or i.get("details", {}).get("text"))
        for i in outcome.get("issue", [])
        if i.get("severity") in ("error", "fatal")
    ]


async def test_validate_rejects_a_broken_resource(fhir: FhirClient) -> None:
    # Parses fine, breaks the base StructureDefinition: the validator itself must object.
    outcome = await fhir.validate({"resourceType": "Observation"})
    found = errors_in(outcome)
    assert any("Observation.status" in e for e in found), found
    assert any("Observation.code" in e for e in found), found

    # Does not even parse (unknown code in a required binding).
    assert errors_in(await fhir.validate({"resourceType": "Patient", "gender": "banana"}))


async def test_validate_accepts_a_good_resource_and_checks_the_profile(fhir: FhirClient) -> None:
    fine = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-01-01"}
    assert errors_in(await fhir.validate(fine)) == []
    core = "http://hl7.org/fhir/StructureDefinition/Patient"
    assert errors_in(await fhir.validate(fine, profile=core)) == []
    unknown = await fhir.validate(fine, profile="http://example.org/no-such-profile")
    assert any("no-such-profile" in e for e in errors_in(unknown))


async def test_deleted_resource_is_gone(fhir: FhirClient, run_tag: RunTag, case_id: str) -> None:
    created = await fhir.create(patient(run_tag, case_id))
    await fhir.delete("Patient", created["id"])
    with pytest.raises(Gone):
        await fhir.read("Patient", created["id"])
