"""The integration tier: a real FHIR server (HAPI on 127.0.0.1 in CI) and a per-run tag.

* ``BHI_FHIR_BASE_URL`` picks the server (default ``http://127.0.0.1:8080/fhir``).
* If ``/metadata`` does not answer, every test here is skipped with the reason — unless
  ``BHI_REQUIRE_HAPI=1`` (CI), where a missing server is a failure, not a silent skip.
* Every resource a test creates goes through ``run_tag.tag(...)``, which adds
  ``meta.tag`` = (https://bhi-fhir.dev/test-run, <uuid>); at the end of the session every
  tagged resource of every type used is deleted by ``_tag`` — safe on a shared sandbox.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bhi_fhir.fhir import FhirClient
from tests.fhir_server import require_fhir_server

TAG_SYSTEM = "https://bhi-fhir.dev/test-run"
CASE_SYSTEM = "https://bhi-fhir.dev/test-case"
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == _HERE:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fhir_base_url() -> str:
    """The server's base URL, once ``/metadata`` answered with a CapabilityStatement."""
    return require_fhir_server("integration tier")


@dataclass
class RunTag:
    """This run's tag, and the resource types it was put on (for the cleanup)."""

    code: str
    types_used: list[str] = field(default_factory=list)

    @property
    def search_value(self) -> str:
        """The ``_tag`` search parameter value."""
        return f"{TAG_SYSTEM}|{self.code}"

    def tag(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Add the run tag to ``resource`` (in place, also returned) and remember its type."""
        meta = resource.setdefault("meta", {})
        tags = meta.setdefault("tag", [])
        if not any(t.get("system") == TAG_SYSTEM for t in tags):
            tags.append({"system": TAG_SYSTEM, "code": self.code})
        resource_type = resource["resourceType"]
        if resource_type not in self.types_used:
            self.types_used.append(resource_type)
        return resource


def _delete_tagged(base: str, tag: RunTag) -> list[str]:
    """Delete everything carrying the tag; dependents (used later) first. Returns failures."""
    failures: list[str] = []
    with httpx.Client(
        headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"}, timeout=60
    ) as http:
        for resource_type in reversed(tag.types_used):
            ids: list[str] = []
            url: str | None = f"{base}/{resource_type}"
            params: dict[str, str] | None = {"_tag": tag.search_value, "_count": "200"}
            while url:
                bundle = http.get(url, params=params).json()
                ids += [e["resource"]["id"] for e in bundle.get("entry", [])]
                url = next(
                    (lnk["url"] for lnk in bundle.get("link", []) if lnk["relation"] == "next"),
                    None,
                )
                params = None
            for resource_id in ids:
                response = http.delete(f"{base}/{resource_type}/{resource_id}")
                if response.status_code >= 400:  # the server's reason names the referrer
                    failures.append(f"{resource_type}/{resource_id}: {response.status_code} "
                                    f"{response.text[:300]}")
    return failures


@pytest.fixture(scope="session")
def run_tag(fhir_base_url: str) -> Iterator[RunTag]:
    tag = RunTag(uuid.uuid4().hex)
    yield tag
    failures = _delete_tagged(fhir_base_url, tag)
    assert not failures, f"cleanup left tagged resources behind: {failures}"


@pytest.fixture
async def fhir(fhir_base_url: str) -> AsyncIterator[FhirClient]:
    async with FhirClient(fhir_base_url, max_retries=2, backoff_max=2) as client:
        yield client


@pytest.fixture
async def plan_resources(fhir: FhirClient, run_tag: RunTag) -> list[str]:
    """The bundled practice plan's Practitioners, PractitionerRoles and Organizations, PUT
    with their own ids (run-tagged, so the cleanup deletes them): ``doctor`` requires them."""
    from bhi_fhir.fhir.doctor_data import plan_references
    from bhi_fhir.practice_plan import load_practice_plan
    from bhi_fhir.sync.runner import default_plan_path

    references = list(plan_references(load_practice_plan(default_plan_path())))
    for reference in references:
        kind, _, ident = reference.partition("/")
        resource: dict[str, Any] = {"resourceType": kind, "id": ident}
        if kind == "Organization":
            resource["name"] = ident
        await fhir.update(run_tag.tag(resource))
    return references


@pytest.fixture
def case_id() -> str:
    """A fresh identifier value so each test searches only what it created."""
    return uuid.uuid4().hex
