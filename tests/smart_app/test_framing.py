"""Clickjacking: ``Content-Security-Policy: frame-ancestors`` names the registered EHR's origins
for that EHR's launch and sessions, and only the app itself everywhere else. (The browser tier
checks that Chromium really shows the app in that EHR's iframe and nowhere else.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from smart_app.config import EhrRegistration
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import (
    APP_URL,
    CLIENT_ID,
    authorize,
    make_settings,
    start_launch,
)

EHR_ORIGIN = "https://ehr.example.org"


def _ancestors(response: object) -> list[str]:
    csp = response.headers["content-security-policy"]  # type: ignore[attr-defined]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "frame-ancestors" in directives, csp
    return list(directives["frame-ancestors"])


@pytest.fixture
def framed(ehr: AuthServerState) -> Iterator[TestClient]:
    registration = EhrRegistration(
        iss=ehr.fhir_base, client_id=CLIENT_ID, frame_ancestors=("'self'", EHR_ORIGIN)
    )
    settings = make_settings(ehr, registrations=[registration])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        yield client


def test_the_registered_ehr_may_frame_its_launch_and_session(
    framed: TestClient, ehr: AuthServerState
) -> None:
    first = start_launch(framed, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    assert _ancestors(first) == ["'self'", EHR_ORIGIN]
    callback = framed.get(authorize(first), follow_redirects=False)
    assert _ancestors(callback) == ["'self'", EHR_ORIGIN]
    page = framed.get("/patient/p1")
    assert page.status_code == 200 and _ancestors(page) == ["'self'", EHR_ORIGIN]


def test_nothing_else_may_frame_the_app(framed: TestClient) -> None:
    # No session, an unknown EHR, a refusal: only the app itself.
    assert _ancestors(framed.get("/patient/p1")) == ["'self'"]
    refused = start_launch(framed, iss="https://rogue.example/fhir", launch="x")
    assert refused.status_code == 403 and _ancestors(refused) == ["'self'"]
    assert _ancestors(framed.get("/signed-out")) == ["'self'"]


def test_default_is_self_only(app_client: TestClient, ehr: AuthServerState) -> None:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    assert _ancestors(first) == ["'self'"]


def test_each_ehr_gets_only_its_own_origins(ehr: AuthServerState) -> None:
    other = EhrRegistration(
        iss="https://other-ehr.example/fhir",
        client_id="x",
        frame_ancestors=("https://other-ehr.example",),
    )
    mine = EhrRegistration(iss=ehr.fhir_base, client_id=CLIENT_ID, frame_ancestors=(EHR_ORIGIN,))
    settings = make_settings(ehr, registrations=[other, mine])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        first = start_launch(client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
        assert _ancestors(first) == [EHR_ORIGIN]
        client.get(authorize(first), follow_redirects=False)
        assert _ancestors(client.get("/patient/p1")) == [EHR_ORIGIN]


@pytest.mark.parametrize(
    "bad", ["*", "https://*.example.org", "https://ehr.example.org/path", "javascript:", ""]
)
def test_frame_ancestors_must_be_origins(bad: str) -> None:
    with pytest.raises(ValidationError):
        EhrRegistration(iss="https://ehr.example/fhir", client_id="x", frame_ancestors=(bad,))
