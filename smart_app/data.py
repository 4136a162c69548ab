"""Where the views read and write: the EHR's FHIR server (with the session's bearer token), or,
for ``--demo``, the bundled synthetic clinic held in memory.

Both implement :class:`ClinicSource`; the views never know which one they have.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from bhi_fhir.fhir import BearerAuth, FhirClient, NotFound
from bhi_fhir.timeline import patient_of

Resource = dict[str, Any]

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
)


class ClinicSource(Protocol):
    @property
    def request_count(self) -> int: ...

    async def patient_resources(self, patient_id: str) -> list[Resource]:
        """The Patient first, then everything the patient view needs."""
        ...

    async def enrolled_patients(self) -> list[str]:
        """Ids of patients with an active BHI CarePlan."""
        ...

    async def read(self, resource_type: str, resource_id: str) -> Resource: ...

    async def update(self, resource: Resource, if_match: str | None) -> Resource: ...

    async def create(self, resource: Resource) -> Resource: ...

    async def transaction(self, bundle: Resource) -> Resource: ...

    async def aclose(self) -> None: ...


class FhirSource:
    def __init__(self, base_url: str, access_token: str, timeout: float) -> None:
        self._fhir = FhirClient(
            base_url, auth=BearerAuth(access_token), timeout=timeout, max_retries=2
        )

    @property
    def request_count(self) -> int:
        return self._fhir.request_count

    async def patient_resources(self, patient_id: str) -> list[Resource]:
        async def search(resource_type: str, param: str) -> list[Resource]:
            params = {param: f"Patient/{patient_id}", "_count": "200"}
            return [r async for r in self._fhir.search(resource_type, params)]

        patient = asyncio.ensure_future(self._fhir.read("Patient", patient_id))
        found = await asyncio.gather(*(search(t, p) for t, p in PATIENT_SEARCHES))
        return [await patient, *(r for group in found for r in group)]

    async def enrolled_patients(self) -> list[str]:
        params = {"category": MENTAL_HEALTH_CARE_PLAN, "status": "active", "_count": "200"}
        ids: list[str] = []
        async for plan in self._fhir.search("CarePlan", params):
            ref = patient_of(plan)
            if ref and ref.split("/", 1)[1] not in ids:
                ids.append(ref.split("/", 1)[1])
        return ids

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        return await self._fhir.read(resource_type, resource_id)

    async def update(self, resource: Resource, if_match: str | None) -> Resource:
        return await self._fhir.update(resource, if_match=if_match)

    async def create(self, resource: Resource) -> Resource:
        return await self._fhir.create(resource)

    async def transaction(self, bundle: Resource) -> Resource:
        return await self._fhir.transaction(bundle)

    async def aclose(self) -> None:
        await self._fhir.aclose()


class MemorySource:
    """The demo clinic: resources in memory, writes applied in memory (never to an EHR)."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._by_key: dict[tuple[str, str], Resource] = {}
        for resource in resources:
            self._put(copy.deepcopy(resource))
        self._count = 0

    @classmethod
    def from_ndjson_dir(cls, folder: Path) -> MemorySource:
        items: list[Resource] = []
        for path in sorted(folder.glob("*.ndjson")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    items.append(json.loads(line))
        return cls(items)

    @property
    def request_count(self) -> int:
        return self._count

    def _put(self, resource: Resource) -> Resource:
        resource.setdefault("id", uuid.uuid4().hex[:12])
        meta = resource.setdefault("meta", {})
        old = self._by_key.get((resource["resourceType"], resource["id"]))
        old_version = int((old or {}).get("meta", {}).get("versionId", "0") or 0)
        meta["versionId"] = str(old_version + 1)
        self._by_key[(resource["resourceType"], resource["id"])] = resource
        return resource

    async def patient_resources(self, patient_id: str) -> list[Resource]:
        self._count += 1 + len(PATIENT_SEARCHES)
        patient = await self.read("Patient", patient_id)
        ref = f"Patient/{patient_id}"
        others = [
            copy.deepcopy(r)
            for r in self._by_key.values()
            if r["resourceType"] != "Patient" and patient_of(r) == ref
        ]
        return [patient, *others]

    async def enrolled_patients(self) -> list[str]:
        self._count += 1
        ids: list[str] = []
        for r in self._by_key.values():
            if r["resourceType"] == "CarePlan" and r.get("status") == "active":
                codes = {
                    c.get("code")
                    for cat in r.get("category") or []
                    for c in cat.get("coding") or []
                }
                ref = patient_of(r)
                if "718347000" in codes and ref and ref.split("/", 1)[1] not in ids:
                    ids.append(ref.split("/", 1)[1])
        return ids

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        self._count += 1
        found = self._by_key.get((resource_type, resource_id))
        if found is None:
            raise NotFound(f"{resource_type}/{resource_id} not found")
        return copy.deepcopy(found)

    async def update(self, resource: Resource, if_match: str | None) -> Resource:
        self._count += 1
        return copy.deepcopy(self._put(copy.deepcopy(resource)))

    async def create(self, resource: Resource) -> Resource:
        self._count += 1
        item = copy.deepcopy(resource)
        item.pop("id", None)
        return copy.deepcopy(self._put(item))

    async def transaction(self, bundle: Resource) -> Resource:
        self._count += 1
        urls: dict[str, str] = {}
        created: list[Resource] = []
        for entry in bundle.get("entry") or []:
            resource = copy.deepcopy(entry["resource"])
            if entry.get("request", {}).get("method") == "POST":
                resource.pop("id", None)
            stored = self._put(resource)
            urls[entry.get("fullUrl", "")] = f"{stored['resourceType']}/{stored['id']}"
            created.append(stored)
        for stored in created:  # resolve urn:uuid references inside the bundle
            text = json.dumps(stored)
            for urn, ref in urls.items():
                if urn:
                    text = text.replace(f'"{urn}"', f'"{ref}"')
            self._by_key[(stored["resourceType"], stored["id"])] = json.loads(text)
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created", "location": urls[u]}} for u in urls],
        }

    async def aclose(self) -> None:
        return None
