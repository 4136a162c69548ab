"""bhi-fhir's CDS Hooks service driven by a CDS Hooks client that is not ours, and checked
against that client's JSON schemas of the specification's shapes.

The client is HealthChain (PyPI ``healthchain``, Apache-2.0, "CDS Hooks 2.0" models in
pydantic, and ``SandboxClient``, a simulated EHR that posts hook requests); it runs in its own
process (tests/smart_app/healthchain_driver.py) from the folder tools/test installs it in
(``build/thirdparty``: its pins, e.g. fastapi < 0.138 and httpx < 0.28, conflict with the app's).
The app runs in uvicorn; the EHR's JWKS is the SMART EHR fixture's (tests/smart_app/auth_server).

Contract: the discovery document, the hook request HealthChain built and the cards the service
returned are validated with ``jsonschema`` against the JSON schemas HealthChain's models publish
(``model_json_schema``), besides its models parsing them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization

from smart_app.cds import SERVICE_ID
from smart_app.config import Settings
from smart_app.main import create_app
from tests.instruments.screen_records import phq9_response
from tests.smart_app.auth_server import (
    AuthServerState,
    ServerThread,
    create_auth_server,
    free_port,
    signing_key,
)
from tests.smart_app.test_cds import CRISIS_POINTS, TODAY, hook_request, prefetch_of

ROOT = Path(__file__).resolve().parents[2]
THIRDPARTY = ROOT / "build" / "thirdparty"  # tools/test: pip install --no-deps --target
DRIVER = Path(__file__).with_name("healthchain_driver.py")


def _thirdparty() -> Path:
    if (THIRDPARTY / "healthchain").is_dir():
        return THIRDPARTY
    reason = f"HealthChain is not installed in {THIRDPARTY} (tools/test installs it)"
    if os.environ.get("BHI_REQUIRE_THIRDPARTY") == "1":
        pytest.fail(reason)  # CI installs it: missing there is a failure, not a skip
    pytest.skip(reason)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The app in uvicorn with the EHR fixture as its CDS client; HealthChain's results."""
    path = _thirdparty()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the jti store
    ehr = AuthServerState()
    with ServerThread(create_auth_server(ehr)) as ehr_server:
        ehr.base = ehr_server.url
        port = free_port()
        settings = Settings(  # type: ignore[call-arg]
            base_url=f"http://127.0.0.1:{port}", cookie_secure=False, today=TODAY,
            cds_clients={ehr.base: f"{ehr.base}/jwks"},
        )
        with ServerThread(create_app(settings), port=port) as app:
            screen = phq9_response("p1", "2026-11-25T10:00:00Z", points=CRISIS_POINTS)
            key_pem = signing_key().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode()
            args = {"app": app.url, "issuer": ehr.base, "kid": ehr.jwks_kid,
                    "key_pem": key_pem, "patient_id": "p1",
                    "prefetch": prefetch_of([screen])}
            done = subprocess.run(
                [sys.executable, str(DRIVER), json.dumps(args)], capture_output=True,
                text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(path)},
            )
            assert done.returncode == 0, done.stderr[-3000:]
            yield json.loads(done.stdout.strip().splitlines()[-1])


def test_healthchain_discovers_the_service_and_gets_its_cards(run: dict[str, Any]) -> None:
    services = {s["id"]: s["hook"] for s in run["discovery"]["services"]}
    assert services[SERVICE_ID] == "patient-view"
    (response,) = run["responses"]
    # HealthChain's CDSResponse model refuses the cards only for a link without
    # autoLaunchable, which its Link model requires (Optional without a default) where the
    # spec makes it OPTIONAL (CDS Hooks 2.0 "Link"; experimental): its deviation, not ours.
    (errors,) = run["model_errors"]
    assert errors is not None
    assert {line for line in errors.splitlines() if line.startswith("cards.")} == {
        f"cards.{i}.links.0.autoLaunchable" for i in range(len(response["cards"]))}
    (crisis,) = [c for c in response["cards"] if c["indicator"] == "critical"]
    assert crisis["links"][0]["type"] == "smart"
    assert any(a["type"] == "create" for s in crisis["suggestions"] for a in s["actions"])


def _as_the_spec_says(schemas: dict[str, Any]) -> dict[str, Any]:
    """HealthChain's schemas with Link.autoLaunchable OPTIONAL, as CDS Hooks 2.0 has it."""
    link = schemas["response"]["$defs"]["Link"]
    link["required"] = [name for name in link["required"] if name != "autoLaunchable"]
    return schemas


def test_contract_against_healthchains_json_schemas(run: dict[str, Any]) -> None:
    schemas = _as_the_spec_says(run["schemas"])
    jsonschema.validate(run["discovery"], schemas["discovery"])
    jsonschema.validate(run["request"], schemas["request"])  # what HealthChain sent us
    (response,) = run["responses"]
    jsonschema.validate(response, schemas["response"])
    # The requests our own tests send are requests HealthChain's schema accepts too.
    jsonschema.validate(hook_request(prefetch_of([])), schemas["request"])
    # The schema has teeth: what the spec forbids is refused.
    card = response["cards"][0]
    for broken in ({**card, "indicator": "hard-stop"}, {**card, "summary": "x" * 141},
                   {k: v for k, v in card.items() if k != "source"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"cards": [broken]}, schemas["response"])
