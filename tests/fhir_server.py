"""The one check that a real FHIR server is there, shared by every tier that needs one.

``BHI_FHIR_BASE_URL`` picks the server (default the local HAPI). If ``/metadata`` does not
answer with a CapabilityStatement the calling test is skipped with the reason — unless
``BHI_REQUIRE_HAPI=1`` (CI), where a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os

import httpx
import pytest

DEFAULT_BASE_URL = "http://127.0.0.1:8080/fhir"


def require_fhir_server(tier: str) -> str:
    """The server's base URL; skips (or in CI fails) ``tier`` when there is none."""
    base = os.environ.get("BHI_FHIR_BASE_URL", DEFAULT_BASE_URL).rstrip("/")
    reason = None
    try:
        response = httpx.get(
            f"{base}/metadata", headers={"Accept": "application/fhir+json"}, timeout=30
        )
        if response.status_code != 200:
            reason = f"{base}/metadata answered {response.status_code}"
        elif response.json().get("resourceType") != "CapabilityStatement":
            reason = f"{base}/metadata is not a CapabilityStatement"
    except (httpx.HTTPError, ValueError) as exc:
        reason = f"no FHIR server at {base} ({type(exc).__name__}: {exc})"
    if reason:
        if os.environ.get("BHI_REQUIRE_HAPI") == "1":
            pytest.fail(f"BHI_REQUIRE_HAPI=1 but {reason}", pytrace=False)
        print(f"{tier} skipped: {reason}")
        pytest.skip(f"{tier} skipped: {reason}; start one with tools/hapi/start")
    return base
