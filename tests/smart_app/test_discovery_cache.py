"""The EHR's SMART configuration is discovered once per ``DISCOVERY_TTL`` per app, not on every
launch (one request less between the EHR's click and the patient view); a configuration the app
refuses (no PKCE S256, SMART App Launch 2.2 app-launch.md) is asked again on the next launch."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import ehr_launch, start_launch

WELL_KNOWN = ("GET", "/fhir/.well-known/smart-configuration")


def test_two_launches_discover_once(app_client: TestClient, ehr: AuthServerState) -> None:
    assert ehr_launch(app_client, ehr).status_code == 303
    assert ehr_launch(app_client, ehr).status_code == 303
    assert ehr.requests.count(WELL_KNOWN) == 1


def test_a_refused_configuration_is_not_kept(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.code_challenge_methods = ["plain"]  # no S256: refused before any authorize request
    refused = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    assert refused.status_code == 400
    ehr.code_challenge_methods = ["S256"]  # the EHR fixed: the next launch asks again
    assert ehr_launch(app_client, ehr).status_code == 303
    assert ehr.requests.count(WELL_KNOWN) == 2
