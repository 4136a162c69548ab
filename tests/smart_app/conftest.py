"""Fixtures: a SMART EHR (tests/smart_app/auth_server.py) on 127.0.0.1, the app, launch helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState, Client, ServerThread, create_auth_server

APP_URL = "http://testserver"
CLIENT_ID = "bhi-app"


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry read model's store (the default state file) in the test's own folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def ehr() -> Iterator[AuthServerState]:
    state = AuthServerState()
    with ServerThread(create_auth_server(state)) as server:
        state.base = server.url
        state.clients[CLIENT_ID] = Client(CLIENT_ID, f"{APP_URL}/callback")
        state.resources["Patient/p1"] = {
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"text": "Ada Example"}],
            "gender": "female",
            "birthDate": "1980-01-01",
        }
        yield state


def make_settings(ehr: AuthServerState, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "base_url": APP_URL,
        "registrations": [EhrRegistration(iss=ehr.fhir_base, client_id=CLIENT_ID)],
        "cookie_secure": False,
        "today": "2026-11-26",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def app_client(ehr: AuthServerState) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(ehr)), base_url=APP_URL) as client:
        yield client


def start_launch(client: TestClient, **params: str) -> httpx.Response:
    return client.get("/launch", params=params, follow_redirects=False)


def authorize(response: httpx.Response) -> str:
    """Follow the app's redirect to the real authorization server; the callback path+query."""
    assert response.status_code == 302, response.text
    answer = httpx.get(response.headers["location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    parts = urlsplit(answer.headers["location"])
    return f"{parts.path}?{parts.query}"


def ehr_launch(client: TestClient, ehr: AuthServerState, **context: object) -> httpx.Response:
    """A full EHR launch; returns the /callback response."""
    launch = ehr.new_launch(**({"patient": "p1", "fhirUser": "Practitioner/cm1"} | context))
    callback = authorize(start_launch(client, iss=ehr.fhir_base, launch=launch))
    return client.get(callback, follow_redirects=False)


def age_token(client: TestClient, remaining: float = 1.0) -> None:
    """Leave the session's access token ``remaining`` seconds: due for a refresh (and, under
    the app's clock-skew allowance, as good as expired)."""
    store = client.app.state.store  # type: ignore[attr-defined]
    session = store.get(client.cookies.get("bhi_session"))
    session.token.expires_at = time.time() + remaining
    store.save(session)


def write_clinic(folder: Path, resources: list[dict[str, object]]) -> Path:
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(str(r["resourceType"]), []).append(json.dumps(r))
    for kind, lines in by_type.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(lines) + "\n")
    return folder
