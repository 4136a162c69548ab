"""Where the views read and write: the EHR's FHIR server (with the session's bearer token), or,
for ``--demo``, the bundled synthetic clinic held in memory.

Both implement :class:`ClinicSource`; the views never know which one they have.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import httpx

from bhi_fhir.fhir import (
    BearerAuth,
    FhirClient,
    NotFound,
    PreconditionFailed,
)
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.fhirjson import etag_version, patient_of
from bhi_fhir.registry.reader import (  # the registry's read, shared with the read model
    MENTAL_HEALTH_CARE_PLAN,
    REGISTRY_PAGE,
    enrolled_ids,
    read_records,
)
from bhi_fhir.sources import SourceError, read_resources
from bhi_fhir.timeline import OWN_ENROLLMENT, EnrollmentRule, is_enrollment

# What the caseload count reads of each active BHI CarePlan (bhi_fhir.workflow.caseload_manager:
# status, what makes it the practice's own (identifier, instantiatesCanonical), the contributor
# naming the care manager); the rest is left on the server.
CASELOAD_ELEMENTS = "status,category,contributor,identifier,instantiatesCanonical"


class ClinicSource(Protocol):
    @property
    def request_count(self) -> int: ...

    async def patient_resources(self, patient_id: str) -> list[Resource]:
        """The Patient first, then everything the patient view needs."""
        ...

    async def enrolled_patients(self, rule: EnrollmentRule = OWN_ENROLLMENT) -> list[str]:
        """Ids of patients enrolled: the practice's own active BHI CarePlan (``rule``), not
        another service's mental-health care plan."""
        ...

    async def active_bhi_careplans(self) -> list[Resource]:
        """Every active BHI CarePlan (SNOMED 718347000) with at least status, category and
        contributor: one paged search, the input of ``bhi_fhir.workflow.count_caseloads``."""
        ...

    async def patients_resources(self, patient_ids: list[str]) -> dict[str, list[Resource]]:
        """``patient_resources`` for many patients at once (the registry): a few requests per
        page of patients, not one set per patient."""
        ...

    async def read(self, resource_type: str, resource_id: str) -> Resource: ...

    async def update(self, resource: Resource, if_match: str | None) -> Resource: ...

    async def create(self, resource: Resource) -> Resource: ...

    async def transaction(self, bundle: Resource) -> Resource: ...

    async def aclose(self) -> None: ...


class FhirSource:
    def __init__(
        self, base_url: str, access_token: str, timeout: float, auth: httpx.Auth | None = None
    ) -> None:
        """``auth`` replaces the static bearer (the app's session auth renews after a 401)."""
        self._fhir = FhirClient(
            base_url, auth=auth or BearerAuth(access_token), timeout=timeout, max_retries=2
        )

    @property
    def request_count(self) -> int:
        return self._fhir.request_count

    async def patient_resources(self, patient_id: str) -> list[Resource]:
        """One round trip: the registry's read (``read_records``) for this one patient, a
        batch Bundle of ``Patient?_id=`` and every patient-compartment search (a further page
        of results costs one request more; a server refusing batch is asked per search)."""
        records = await read_records(self._fhir, [patient_id])
        if patient_id not in records:
            raise NotFound(f"GET Patient/{patient_id} → 404", status=404)
        return records[patient_id]

    async def patients_resources(self, patient_ids: list[str]) -> dict[str, list[Resource]]:
        """A few batch Bundles per page of patients (``bhi_fhir.registry.reader``)."""
        return await read_records(self._fhir, patient_ids)

    async def enrolled_patients(self, rule: EnrollmentRule = OWN_ENROLLMENT) -> list[str]:
        return await enrolled_ids(self._fhir, rule)

    async def active_bhi_careplans(self) -> list[Resource]:
        params = {
            "category": MENTAL_HEALTH_CARE_PLAN,
            "status": "active",
            "_elements": CASELOAD_ELEMENTS,
            "_count": "500",
        }
        return [plan async for plan in self._fhir.search("CarePlan", params)]

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
        for found in read_resources(sorted(folder.glob("*.ndjson"))):  # the one NDJSON reader
            if isinstance(found, SourceError):
                raise ValueError(f"demo clinic: {found}")
            items.append(dict(found))
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
        self._count += 1  # what a server source sends: one batch
        patient = await self.read("Patient", patient_id)
        ref = f"Patient/{patient_id}"
        others = [
            copy.deepcopy(r)
            for r in self._by_key.values()
            if r["resourceType"] != "Patient" and patient_of(r) == ref
        ]
        return [patient, *others]

    async def patients_resources(self, patient_ids: list[str]) -> dict[str, list[Resource]]:
        out: dict[str, list[Resource]] = {}
        for start in range(0, len(patient_ids), REGISTRY_PAGE):
            before = self._count
            for patient_id in patient_ids[start : start + REGISTRY_PAGE]:
                out[patient_id] = await self.patient_resources(patient_id)
            self._count = before + 1  # what a server source sends: one batch per page
        return out

    def _active_bhi(self) -> list[Resource]:
        """What a server's ``category=…718347000&status=active`` search matches; a CarePlan
        whose category is not a list of CodeableConcepts matches nothing (as on a server)."""

        def codes(plan: Resource) -> set[Any]:
            categories = plan.get("category")
            return {
                coding.get("code")
                for category in (categories if isinstance(categories, list) else [])
                if isinstance(category, dict) and isinstance(category.get("coding"), list)
                for coding in category["coding"]
                if isinstance(coding, dict)
            }

        return [
            r
            for r in self._by_key.values()
            if r["resourceType"] == "CarePlan"
            and r.get("status") == "active"
            and "718347000" in codes(r)
        ]

    async def enrolled_patients(self, rule: EnrollmentRule = OWN_ENROLLMENT) -> list[str]:
        self._count += 1
        ids: list[str] = []
        for r in self._active_bhi():
            ref = patient_of(r) if is_enrollment(r, rule) else None
            if ref and ref.split("/", 1)[1] not in ids:
                ids.append(ref.split("/", 1)[1])
        return ids

    async def active_bhi_careplans(self) -> list[Resource]:
        self._count += 1  # one search (a server pages it)
        return [copy.deepcopy(r) for r in self._active_bhi()]

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

    def _matching(self, resource_type: str, query: str) -> Resource | None:
        """The resource a conditional create's ``identifier=`` / ``_tag=`` query matches."""
        name, _, value = query.partition("=")
        system, _, code = unquote(value).partition("|")
        for (kind, _id), r in self._by_key.items():
            if kind != resource_type:
                continue
            if name == "identifier":
                items = [(i.get("system"), i.get("value")) for i in r.get("identifier") or []]
            elif name == "_tag":
                items = [
                    (t.get("system"), t.get("code")) for t in (r.get("meta") or {}).get("tag") or []
                ]
            else:
                raise ValueError(f"unsupported conditional create: {name}")
            if (system, code) in items:
                return r
        return None

    async def transaction(self, bundle: Resource) -> Resource:
        """All or nothing, like a server: ``ifMatch`` checked first, ``ifNoneExist`` honoured
        (a match is ``200 OK`` and nothing is written), ``urn:uuid`` references resolved."""
        self._count += 1
        entries = bundle.get("entry") or []
        for entry in entries:
            request = entry.get("request") or {}
            if request.get("method") == "PUT" and request.get("ifMatch"):
                kind, _, ident = str(request["url"]).partition("/")
                current = self._by_key.get((kind, ident))
                version = etag_version(str(request["ifMatch"]))
                if current is None or current["meta"].get("versionId") != version:
                    raise PreconditionFailed(f"{kind} version conflict (412)")
        urls: dict[str, str] = {}
        written: list[Resource] = []
        responses: list[Resource] = []
        for entry in entries:
            request = entry.get("request") or {}
            resource = copy.deepcopy(entry["resource"])
            if request.get("method") == "POST":
                condition = request.get("ifNoneExist")
                found = self._matching(resource["resourceType"], condition) if condition else None
                if found is not None:
                    ref = f"{found['resourceType']}/{found['id']}"
                    urls[entry.get("fullUrl", "")] = ref
                    responses.append({"response": {"status": "200 OK", "location": ref}})
                    continue
                resource.pop("id", None)
            stored = self._put(resource)
            ref = f"{stored['resourceType']}/{stored['id']}"
            urls[entry.get("fullUrl", "")] = ref
            status = "201 Created" if request.get("method") == "POST" else "200 OK"
            responses.append({"response": {"status": status, "location": ref}})
            written.append(stored)
        for stored in written:  # resolve urn:uuid references inside the bundle
            text = json.dumps(stored)
            for urn, ref in urls.items():
                if urn:
                    text = text.replace(f'"{urn}"', f'"{ref}"')
            self._by_key[(stored["resourceType"], stored["id"])] = json.loads(text)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}

    async def aclose(self) -> None:
        return None
