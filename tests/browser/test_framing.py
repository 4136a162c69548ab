"""Clickjacking in a real browser: Chromium shows the app inside the registered EHR's iframe and
refuses to show it inside any other page (CSP ``frame-ancestors``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import (
    AuthServerState,
    Client,
    ServerThread,
    create_auth_server,
    free_port,
)


def _portal() -> FastAPI:
    """A page that frames whatever URL it is given (an EHR's chart, or an attacker's page)."""
    portal = FastAPI()

    @portal.get("/frame")
    async def frame(src: str) -> HTMLResponse:
        return HTMLResponse(
            f'<html><body><h1>portal</h1><iframe id="app" src="{src}" width="1200" '
            'height="900"></iframe></body></html>'
        )

    return portal


@pytest.fixture
def setup() -> Iterator[dict[str, Any]]:
    state = AuthServerState()
    state.resources["Patient/p1"] = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"text": "Ada Framed"}],
        "gender": "female",
        "birthDate": "1980-01-01",
    }
    with (
        ServerThread(create_auth_server(state)) as auth,
        ServerThread(_portal()) as ehr_portal,
        ServerThread(_portal()) as rogue,
    ):
        state.base = auth.url
        port = free_port()
        app_url = f"http://127.0.0.1:{port}"
        state.clients["bhi-app"] = Client("bhi-app", f"{app_url}/callback")
        settings = Settings(
            base_url=app_url,
            registrations=[
                EhrRegistration(
                    iss=state.fhir_base, client_id="bhi-app", frame_ancestors=(ehr_portal.url,)
                )
            ],
            cookie_secure=False,
            today="2026-11-26",
        )
        with ServerThread(create_app(settings), port=port):
            yield {"state": state, "app": app_url, "ehr": ehr_portal.url, "rogue": rogue.url}


def _framed_launch(page: Any, portal: str, setup: dict[str, Any]) -> Any:
    state: AuthServerState = setup["state"]
    launch = state.new_launch(patient="p1", fhirUser="Practitioner/cm1")
    src = f"{setup['app']}/launch?iss={quote(state.fhir_base)}&launch={launch}"
    page.goto(f"{portal}/frame?src={quote(src, safe='')}")
    page.wait_for_load_state("networkidle")
    return page.frame_locator("#app")


def test_app_shows_inside_the_registered_ehr_only(
    browser: Any, setup: dict[str, Any], screenshots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    frame = _framed_launch(page, setup["ehr"], setup)
    frame.locator("#patient-name").wait_for(timeout=15_000)
    assert frame.locator("#patient-name").inner_text() == "Ada Framed"
    page.screenshot(path=str(screenshots / "patient-view-in-ehr-iframe.png"))

    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    frame = _framed_launch(page, setup["rogue"], setup)
    assert frame.locator("#patient-name").count() == 0
    assert blocked, "Chromium did not report a frame-ancestors violation"
    context.close()


def test_inside_the_ehr_frame_every_role_and_the_session_end_show(
    browser: Any, setup: dict[str, Any], screenshots: Path
) -> None:
    """The patient-facing view and the session-ended page carry the EHR's frame-ancestors too:
    a patient launched from the EHR's portal, then a clinician whose token the EHR revoked."""
    state: AuthServerState = setup["state"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    launch = state.new_launch(patient="p1", fhirUser="Patient/p1")
    src = f"{setup['app']}/launch?iss={quote(state.fhir_base)}&launch={launch}"
    page.goto(f"{setup['ehr']}/frame?src={quote(src, safe='')}")
    frame = page.frame_locator("#app")
    frame.locator("#questionnaires").wait_for(timeout=15_000)
    assert frame.locator("#log-time").count() == 0
    page.screenshot(path=str(screenshots / "patient-facing-view-in-ehr-iframe.png"))
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    frame = _framed_launch(page, setup["ehr"], setup)
    frame.locator("#patient-name").wait_for(timeout=15_000)
    state.access_tokens.clear()  # the EHR revokes the session's tokens
    state.refresh_tokens.clear()
    page.frames[1].goto(f"{setup['app']}/patient/p1")  # the next page inside the frame
    frame.locator("#relaunch").wait_for(timeout=15_000)
    assert frame.locator("h1").inner_text() == "Your session has ended"
    page.screenshot(path=str(screenshots / "session-ended-in-ehr-iframe.png"))
    context.close()
