"""`bhi-fhir bill` on a real FHIR server: seed a month, bill it twice, one Encounter.

Every seeded resource carries the run tag (deleted at session end); the billing Encounter and
Provenance this test makes the CLI write are deleted by the test itself, first, because they
reference the seeded resources.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bhi_fhir.billing.representation import time_entry
from bhi_fhir.cli import _register, app
from bhi_fhir.codes import BHI_IDENTIFIER, CPT, ICD10CM, SNOMED, V3_ACT_CODE
from bhi_fhir.fhir import FhirClient

pytestmark = pytest.mark.integration

_register()
MONTH = "2026-10"  # a closed month (today is after it); bhi-domain.md §4.3: bill once accrued


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _seed_bundle(run_tag: Any, case_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    urls = {k: _urn() for k in ("pcp", "bhcm", "psych", "payer", "patient")}
    entries: list[dict[str, Any]] = []

    def add(key: str | None, resource: dict[str, Any]) -> None:
        run_tag.tag(resource)
        entries.append(
            {
                "fullUrl": urls[key] if key else _urn(),
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )

    for key, family in (("pcp", "Primary"), ("bhcm", "Manager"), ("psych", "Consultant")):
        add(key, {"resourceType": "Practitioner", "name": [{"family": family}]})
    add("payer", {"resourceType": "Organization", "name": "Medicare"})
    add(
        "patient",
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                    "system": "urn:example:mrn",
                    "value": f"MRN-{case_id[:8]}",
                }
            ],
            "name": [{"family": "Billing", "given": ["Test"]}],
        },
    )
    patient = {"reference": urls["patient"]}
    add(
        None,
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "treatment",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": patient,
            "dateTime": "2026-09-01",
        },
    )
    add(
        None,
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [{"coding": [{"system": SNOMED, "code": "718347000"}]}],
            "subject": patient,
            "period": {"start": "2026-09-01"},
        },
    )
    add(
        None,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": patient,
            "participant": [
                {"member": {"reference": urls["pcp"]}},
                {"member": {"reference": urls["bhcm"]}},
                {
                    "role": [{"coding": [{"system": SNOMED, "code": "80584001"}]}],
                    "member": {"reference": urls["psych"]},
                },
            ],
        },
    )
    add(
        None,
        {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": ICD10CM, "code": "F32.1"}]},
            "subject": patient,
        },
    )
    add(
        None,
        {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": patient,
            "payor": [{"reference": urls["payer"], "display": "Medicare"}],
        },
    )
    add(
        None,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": V3_ACT_CODE, "code": "AMB"},
            "type": [{"coding": [{"system": CPT, "code": "99213"}]}],
            "subject": patient,
            "participant": [{"individual": {"reference": urls["pcp"]}}],
            "period": {"start": "2026-09-02T09:00:00Z", "end": "2026-09-02T09:30:00Z"},
        },
    )
    # October: 50 + 40 minutes of phone/video care management, 10 of them overlapping → 80.
    for n, (start, minutes, mode) in enumerate(
        [("2026-10-05T14:00:00", 50, "phone"), ("2026-10-05T14:40:00", 40, "video")]
    ):
        begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
        resource = time_entry(
            id="unused",
            patient=urls["patient"],
            clinician=urls["bhcm"],
            start=begin,
            end=begin + timedelta(minutes=minutes),
            mode=mode,  # type: ignore[arg-type]
            program="cocm",
            identifier_system="urn:example:ehr:time-entry",
            identifier_value=f"{case_id}-{n}",
        )
        del resource["id"]
        add(None, resource)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, urls


async def _seed(base: str, run_tag: Any, case_id: str) -> dict[str, str]:
    bundle, urls = _seed_bundle(run_tag, case_id)
    async with FhirClient(base) as fhir:
        response = await fhir.transaction(bundle)
    ids: dict[str, str] = {}
    by_url = {e["fullUrl"]: r for e, r in zip(bundle["entry"], response["entry"], strict=True)}
    for key, url in urls.items():
        location = by_url[url]["response"]["location"]
        ids[key] = "/".join(location.split("/")[:2])
    return ids


def _search(http: httpx.Client, base: str, kind: str, **params: str) -> list[dict[str, Any]]:
    bundle = http.get(f"{base}/{kind}", params={**params, "_count": "50"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_bill_a_month_twice_writes_one_encounter(fhir_base_url, run_tag, case_id):
    ids = asyncio.run(_seed(fhir_base_url, run_tag, case_id))
    patient = ids["patient"]
    identifier = f"billing-cocm-{patient.split('/')[1]}-{MONTH}"
    args = [
        "bill", "--month", MONTH, "--server", fhir_base_url, "--format", "json",
        "--patient", patient, "--billing-practitioner", ids["pcp"], "--timezone", "UTC",
    ]  # fmt: skip
    runner = CliRunner()
    http = httpx.Client(headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"})
    try:
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        (row,) = json.loads(first.stdout)["patients"]
        assert row["minutes"] == 80
        # first month of the episode, 80 minutes: 99492 (36–85), bhi-domain.md §4.2
        assert row["codes"] == [{"code": "99492", "units": 1}]
        assert row["month_kind"] == "initial"
        assert row["billable"], row["reasons"]
        assert row["result"] == "created"

        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["patients"][0]["result"] == "exists"

        encounters = _search(
            http, fhir_base_url, "Encounter", identifier=f"{BHI_IDENTIFIER}|{identifier}"
        )
        assert len(encounters) == 1
        encounter = encounters[0]
        assert encounter["type"][0]["coding"][0]["code"] == "99492"
        assert encounter["class"]["code"] == "VR"
        assert encounter["length"]["value"] == 80
        provenances = _search(
            http, fhir_base_url, "Provenance", _tag=f"{BHI_IDENTIFIER}|{identifier}"
        )
        assert len(provenances) == 1
        assert provenances[0]["target"][0]["reference"].startswith(f"Encounter/{encounter['id']}")
        assert len(provenances[0]["entity"]) == 2
    finally:
        for kind in ("Provenance", "Encounter"):
            search = {
                "_tag" if kind == "Provenance" else "identifier": f"{BHI_IDENTIFIER}|{identifier}"
            }
            for resource in _search(http, fhir_base_url, kind, **search):
                http.delete(f"{fhir_base_url}/{kind}/{resource['id']}")
        http.close()
