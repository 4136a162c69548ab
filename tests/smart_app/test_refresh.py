"""Two requests of one browser that both find the access token about to expire: only one of them
refreshes (per-session lock), and the rotated refresh token is never lost (the fixture honours
each refresh token once, as a rotating server does)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi.testclient import TestClient

from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, age_token, ehr_launch, make_settings


async def test_concurrent_refreshes_do_not_lose_the_rotated_token(ehr: AuthServerState) -> None:
    ehr.expires_in = 30
    app = create_app(make_settings(ehr))
    with TestClient(app, base_url=APP_URL) as client:
        assert ehr_launch(client, ehr).status_code == 303
        age_token(client)  # due for a refresh: both requests want one
        cookie = client.cookies.get("bhi_session")
    assert cookie
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=APP_URL, cookies={"bhi_session": cookie}
    ) as browser:
        pages = await asyncio.gather(*(browser.get("/patient/p1") for _ in range(2)))
        assert [p.status_code for p in pages] == [200, 200], [p.text[:300] for p in pages]
        grants = [c["form"]["grant_type"] for c in ehr.token_requests]
        # With a 30 s token each request refreshes, but never two with the same refresh token:
        spent = [
            c["form"]["refresh_token"] for c in ehr.token_requests if "refresh_token" in c["form"]
        ]
        assert len(spent) == len(set(spent)) and grants[0] == "authorization_code"
        # ... and the session still holds a live refresh token afterwards.
        assert (await browser.get("/patient/p1")).status_code == 200


async def test_a_refresh_done_by_another_request_is_reused(ehr: AuthServerState) -> None:
    ehr.expires_in = 90  # outside the margin once refreshed
    app = create_app(make_settings(ehr))
    with TestClient(app, base_url=APP_URL) as client:
        ehr_launch(client, ehr)
        cookie = client.cookies.get("bhi_session")
        session = app.state.store.get(cookie)
        session.token.expires_at = 0  # expired: the next requests must refresh
        app.state.store.save(session)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=APP_URL, cookies={"bhi_session": cookie}
    ) as browser:
        pages = await asyncio.gather(*(browser.get("/patient/p1") for _ in range(3)))
    assert [p.status_code for p in pages] == [200, 200, 200]
    grants = [c["form"]["grant_type"] for c in ehr.token_requests]
    assert grants == ["authorization_code", "refresh_token"]  # one refresh for all three
