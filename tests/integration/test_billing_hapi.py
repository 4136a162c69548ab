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
MONTH = "2026-10"  # a closed month (today is after it); NGS Medicare CoCM/BHI: bill once accrued


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


def _time_entry(run_tag: Any, patient: str, clinician: str, start: str, minutes: int, n: str):
    begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
    resource = time_entry(
        id="unused",
        patient=patient,
        clinician=clinician,
        start=begin,
        end=begin + timedelta(minutes=minutes),
        mode="phone",
        program="cocm",
        identifier_system="urn:example:ehr:time-entry",
        identifier_value=n,
    )
    del resource["id"]
    return run_tag.tag(resource)


def _cleanup(http: httpx.Client, base: str, identifier: str) -> None:
    for encounter in _search(http, base, "Encounter", identifier=f"{BHI_IDENTIFIER}|{identifier}"):
        for provenance in _search(http, base, "Provenance", target=f"Encounter/{encounter['id']}"):
            http.delete(f"{base}/Provenance/{provenance['id']}")
        http.delete(f"{base}/Encounter/{encounter['id']}")


def test_bill_a_month_twice_writes_one_encounter(fhir_base_url, run_tag, case_id):
    ids = asyncio.run(_seed(fhir_base_url, run_tag, case_id))
    patient = ids["patient"]
    identifier = f"billing-cocm-{patient.split('/')[1]}-{MONTH}"
    args = [
        "bill", "--month", MONTH, "--server", fhir_base_url, "--format", "json",
        "--patient", patient, "--billing-practitioner", ids["pcp"], "--timezone", "UTC",
        "--care-manager", ids["bhcm"],  # CoCM minutes are BHCM time (CMS MLN909432)
    ]  # fmt: skip
    runner = CliRunner()
    http = httpx.Client(headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"})
    try:
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        (row,) = report["patients"]
        assert row["minutes"] == 80
        # first month of the episode, 80 minutes: 99492 (36–85), CPT time midpoint rule
        assert row["codes"] == [{"code": "99492", "units": 1}]
        assert row["month_kind"] == "initial"
        assert row["billable"], row["reasons"]
        assert row["result"] == "created"
        assert report["summary"] == {"created": 1}

        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["patients"][0]["result"] == "unchanged"

        encounters = _search(
            http, fhir_base_url, "Encounter", identifier=f"{BHI_IDENTIFIER}|{identifier}"
        )
        assert len(encounters) == 1
        encounter = encounters[0]
        assert encounter["meta"]["versionId"] == "1"  # the second run wrote nothing
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
        _cleanup(http, fhir_base_url, identifier)
        http.close()


def test_late_time_entry_updates_the_bill(fhir_base_url, run_tag, case_id):
    """Bill October, then a 20-minute call logged late for October: the same Encounter becomes
    version 2 with the new codes and a second Provenance; billing again writes nothing."""
    ids = asyncio.run(_seed(fhir_base_url, run_tag, case_id))
    patient = ids["patient"]
    identifier = f"billing-cocm-{patient.split('/')[1]}-{MONTH}"
    args = [
        "bill", "--month", MONTH, "--server", fhir_base_url, "--format", "json",
        "--patient", patient, "--billing-practitioner", ids["pcp"], "--timezone", "UTC",
        "--care-manager", ids["bhcm"],  # CoCM minutes are BHCM time (CMS MLN909432)
    ]  # fmt: skip
    runner = CliRunner()
    http = httpx.Client(headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"})
    by_identifier = {"identifier": f"{BHI_IDENTIFIER}|{identifier}"}
    try:
        first = runner.invoke(app, args)
        assert json.loads(first.stdout)["patients"][0]["result"] == "created", first.output
        (v1,) = _search(http, fhir_base_url, "Encounter", **by_identifier)

        late = _time_entry(
            run_tag, patient, ids["bhcm"], "2026-10-20T15:00:00", 20, f"{case_id}-late"
        )
        posted = http.post(f"{fhir_base_url}/Encounter", json=late)
        assert posted.status_code == 201, posted.text

        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.output
        report = json.loads(second.stdout)
        (row,) = report["patients"]
        assert row["minutes"] == 100
        # initial month, 100 minutes: 99492 + 99494 x1 (86–115), CPT time midpoint rule, BCBSND
        assert row["codes"] == [{"code": "99492", "units": 1}, {"code": "99494", "units": 1}]
        assert row["result"] == "updated"
        assert "codes" in row["changed"] and "minutes" in row["changed"]
        assert report["summary"] == {"updated": 1}
        assert isinstance(report["requests"], int) and report["requests"] > 0

        (v2,) = _search(http, fhir_base_url, "Encounter", **by_identifier)
        assert v2["id"] == v1["id"]
        assert v2["meta"]["versionId"] == "2"
        assert [t["coding"][0]["code"] for t in v2["type"]] == ["99492", "99494"]
        assert v2["length"]["value"] == 100
        provenances = _search(http, fhir_base_url, "Provenance", target=f"Encounter/{v1['id']}")
        tags = sorted(t["code"] for p in provenances for t in p["meta"].get("tag", [])
                      if t["system"] == BHI_IDENTIFIER)  # fmt: skip
        assert tags == [identifier, f"{identifier}-v2"]
        update = next(p for p in provenances if p["activity"]["coding"][0]["code"] == "UPDATE")
        assert len(update["entity"]) == 3

        third = runner.invoke(app, args)
        assert json.loads(third.stdout)["patients"][0]["result"] == "unchanged", third.output
        (still,) = _search(http, fhir_base_url, "Encounter", **by_identifier)
        assert still["meta"]["versionId"] == "2"

        # A write planned against version 1 (someone else updated meanwhile): the server refuses
        # it (If-Match), the bill is re-read and found up to date — no write, no error.
        result = asyncio.run(_stale_write(fhir_base_url, patient, v1))
        assert result == "unchanged"
        (after,) = _search(http, fhir_base_url, "Encounter", **by_identifier)
        assert after["meta"]["versionId"] == "2"
    finally:
        _cleanup(http, fhir_base_url, identifier)
        http.close()


async def _stale_write(base: str, patient: str, stale: dict[str, Any]) -> str:
    from bhi_fhir.billing.ledger import Month, close_month
    from bhi_fhir.billing.rules import BillingRules
    from bhi_fhir.billing.server import _update, records_from_server
    from bhi_fhir.billing.writeback import plan_write

    people = [p["individual"]["reference"] for p in stale["participant"]]
    # The bill names the billing practitioner first, then the care managers whose time counted.
    rules = BillingRules(billing_practitioner=people[0], care_managers=people[1:])
    month = Month.parse(MONTH)
    now = datetime.now(UTC)
    async with FhirClient(base) as fhir:
        (record,) = await records_from_server(fhir, month, rules, {patient})
        (closed,), _ = close_month(record, month, rules)
        write = plan_write(closed, stale, now)
        assert write.action == "update" and write.version == "1"
        return await _update(fhir, write, now)
