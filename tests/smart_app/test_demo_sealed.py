"""``serve --demo`` is sealed: no EHR registration, notification or state setting from the
environment is used, and nothing in the demo reaches a network address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from bhi_fhir.cli import _register
from bhi_fhir.cli import app as cli_app
from bhi_fhir.exit_codes import EXIT_CONFIG
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from smart_app.sessions import TokenSet, new_session
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, CLIENT_ID


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``uvicorn.run`` replaced: what ``serve`` would have started."""
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    _register()
    return started


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BHI_APP_REGISTRATIONS", '[{"iss": "https://ehr.example/fhir", "client_id": "x"}]'),
        ("bhi_app_registrations", '[{"iss": "https://ehr.example/fhir", "client_id": "x"}]'),
        ("BHI_APP_DEFAULT_ISS", "https://ehr.example/fhir"),
        ("BHI_APP_SESSION_DB_URL", "postgresql://db.example/sessions"),
        ("BHI_NOTIFY_SERVER", "https://ehr.example/fhir"),
        ("BHI_NOTIFY_SECRET", "s3cret"),
        ("BHI_STATE_URL", "postgresql://db.example/state"),
    ],
    ids=["registrations", "lower-case", "default-iss", "session-db", "notify-server",
         "notify-secret", "state-url"],
)
def test_serve_demo_refuses_ehr_settings_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, served: list[Any], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_app, ["serve", "--demo"])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert name.upper() in result.output and "--demo" in result.output
    assert value not in result.output  # names only: a secret is never echoed
    assert served == []


def test_serve_demo_starts_without_them(
    monkeypatch: pytest.MonkeyPatch, served: list[Any]
) -> None:
    for name in ("BHI_APP_REGISTRATIONS", "BHI_NOTIFY_SERVER", "BHI_STATE_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--demo"])
    assert result.exit_code == 0, result.output
    assert len(served) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"registrations": [EhrRegistration(iss="https://ehr.example/fhir", client_id="x")]},
        {"default_iss": "https://ehr.example/fhir"},
        {"session_db_url": "postgresql://db.example/sessions"},
    ],
    ids=["registrations", "default-iss", "network-session-db"],
)
def test_demo_settings_refuse_an_ehr(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="demo"):
        Settings(demo=True, **overrides)  # type: ignore[arg-type]


def test_demo_settings_accept_a_local_session_db(tmp_path: Any) -> None:
    assert Settings(demo=True, session_db_url=f"sqlite:///{tmp_path / 's.db'}").demo


@pytest.fixture
def demo_client() -> Iterator[TestClient]:
    settings = Settings(demo=True, cookie_secure=False, base_url=APP_URL, today="2026-11-26")
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/launch?iss=https://ehr.example/fhir"),
        ("GET", "/callback?state=s&code=c"),
        ("POST", "/fhir-notify"),
        ("PUT", "/fhir-notify/QuestionnaireResponse/q1"),
        ("GET", "/fhir-notify/status"),
    ],
    ids=["launch", "callback", "notify", "notify-resource", "notify-status"],
)
def test_demo_mounts_no_ehr_or_notification_route(
    demo_client: TestClient, method: str, path: str
) -> None:
    assert demo_client.request(method, path).status_code == 404


def test_demo_never_opens_a_fhir_client_for_a_signed_in_session(
    demo_client: TestClient, ehr: AuthServerState
) -> None:
    """A session with an EHR token (however it got into the store) is refused in the demo,
    not served from its ``iss``."""
    app: Any = demo_client.app
    session = new_session()
    session.iss = ehr.fhir_base
    session.token = TokenSet("at", "Bearer", "user/*.cruds")
    app.state.store.save(session)
    demo_client.cookies.set("bhi_session", session.id)
    before = len(ehr.requests)
    page = demo_client.get("/registry")
    assert page.status_code == 403
    assert len(ehr.requests) == before  # nothing was sent to the EHR


def test_demo_mounts_the_clinic(demo_client: TestClient) -> None:
    assert demo_client.get("/demo", follow_redirects=True).status_code == 200


def test_outside_the_demo_launch_and_notify_are_mounted(ehr: AuthServerState) -> None:
    settings = Settings(
        base_url=APP_URL,
        registrations=[EhrRegistration(iss=ehr.fhir_base, client_id=CLIENT_ID)],
        cookie_secure=False,
    )
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        assert client.get("/demo").status_code == 404
        assert client.get("/fhir-notify/status").status_code == 200
        assert client.get("/launch", follow_redirects=False).status_code == 400  # no iss
