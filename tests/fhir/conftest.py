"""Shared fixtures: a respx router standing in for the server, a client on it, recorded sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from bhi_fhir.fhir import _retry
from bhi_fhir.fhir.client import FhirClient

BASE = "http://fhir.test/fhir"


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(base_url=BASE, assert_all_called=False)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff wait the client asks for, instead of really waiting."""
    waited: list[float] = []

    async def record(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(_retry, "sleep", record)
    return waited


@pytest.fixture
async def client(router: respx.MockRouter, sleeps: list[float]) -> AsyncIterator[FhirClient]:
    async with FhirClient(
        BASE, transport=httpx.MockTransport(router.async_handler), max_retries=3
    ) as fhir:
        yield fhir


def outcome(
    text: str, *, severity: str = "error", code: str = "processing", **extra: object
) -> dict[str, Any]:
    issue: dict[str, object] = {"severity": severity, "code": code, "diagnostics": text, **extra}
    return {"resourceType": "OperationOutcome", "issue": [issue]}
