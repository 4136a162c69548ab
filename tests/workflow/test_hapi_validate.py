"""Every resource the engine writes passes `$validate` on a real FHIR server.

Integration tier: needs a server at BHI_FHIR_BASE_URL (default http://127.0.0.1:8080/fhir,
started by tools/hapi/start); skipped without one unless BHI_REQUIRE_HAPI=1.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from bhi_fhir.workflow import to_transaction_bundle
from bhi_fhir.workflow.pipeline import run_apply
from tests.fhir_server import require_fhir_server

from .helpers import ROOT, plan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url() -> str:
    return require_fhir_server("HAPI $validate test")


def test_every_kind_of_output_passes_validate(base_url: str) -> None:
    report = run_apply([ROOT / "examples" / "clinic"], plan(), date(2026, 11, 26))
    bundle = to_transaction_bundle(report.plans)
    one_per_output: dict[str, dict[str, Any]] = {}
    for entry in bundle["entry"]:
        value = entry["resource"]["identifier"][0]["value"]
        one_per_output.setdefault(value.split(":")[0], entry["resource"])
    with httpx.Client(timeout=60, headers={"Content-Type": "application/fhir+json"}) as client:
        for output, resource in sorted(one_per_output.items()):
            response = client.post(f"{base_url}/{resource['resourceType']}/$validate",
                                   json=resource)  # fmt: skip
            outcome = response.json()
            errors = [i for i in outcome.get("issue", [])
                      if i.get("severity") in ("error", "fatal")]  # fmt: skip
            assert not errors, f"{output}: {errors}"
