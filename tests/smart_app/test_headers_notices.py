"""Security headers on every response, error pages included; status notices only from the
app's own catalogue (``?notice=`` is a key, never text shown as the app's message)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from smart_app.config import Settings
from smart_app.main import create_app
from smart_app.views import NOTICES
from tests.smart_app.conftest import APP_URL

HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control")


@pytest.fixture
def demo() -> Iterator[TestClient]:
    app = create_app(
        Settings(demo=True, cookie_secure=False, base_url=APP_URL, today="2026-11-26")
    )

    @app.get("/test-boom")
    async def boom() -> None:
        raise RuntimeError("Ada Example's record broke the page")  # PHI in the message

    with TestClient(app, base_url=APP_URL, raise_server_exceptions=False) as client:
        client.get("/demo", follow_redirects=False)
        yield client


def _patient(client: TestClient) -> str:
    page = client.get("/registry").text
    match = re.search(r'href="/patient/([^"]+)"', page)
    assert match
    return match[1]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/registry", 200), ("/no-such-page", 404), ("/test-boom", 500), ("/static/app.css", 200)],
    ids=["page", "not-found", "server-error", "static"],
)
def test_security_headers_on_every_response(demo: TestClient, path: str, status: int) -> None:
    response = demo.get(path)
    assert response.status_code == status
    for name in HEADERS[:3]:
        assert name in response.headers, name
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if not path.startswith("/static"):
        assert response.headers["Cache-Control"] == "no-store"


def test_the_500_page_is_the_apps_own_and_shows_no_exception_text(demo: TestClient) -> None:
    response = demo.get("/test-boom")
    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"]
    assert "Ada Example" not in response.text and "RuntimeError" not in response.text


@pytest.mark.parametrize(
    "notice",
    [
        "Your session expired. Call 555-0100 and give your password",
        "<b>consent recorded</b>",
        "task completed ",
        "25 minutes logged",
    ],
    ids=["phishing", "markup", "near-key", "old-style-text"],
)
def test_notice_text_from_the_url_is_never_shown(demo: TestClient, notice: str) -> None:
    page = demo.get(f"/patient/{_patient(demo)}", params={"notice": notice})
    assert page.status_code == 200
    assert 'class="notice"' not in page.text
    assert notice not in page.text


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"notice": "consent-recorded"}, "consent recorded"),
        ({"notice": "time-logged", "count": "25"}, "25 minutes logged"),
        ({"notice": "plan-applied", "count": "3"}, "plan applied: 3 writes"),
        ({"notice": "time-logged", "count": "25 minutes. Call 555-0100"}, None),
        ({"notice": "time-logged"}, None),
    ],
    ids=["key", "key-with-count", "plan", "count-not-a-number", "count-missing"],
)
def test_notices_come_from_the_catalogue(
    demo: TestClient, params: dict[str, str], shown: str | None
) -> None:
    page = demo.get(f"/patient/{_patient(demo)}", params=params).text
    notices = re.findall(r'<p class="notice" role="status">([^<]*)</p>', page)
    assert notices == ([shown] if shown else [])
    assert "555-0100" not in page


def test_actions_redirect_with_a_catalogue_key(demo: TestClient) -> None:
    patient = _patient(demo)
    page = demo.get(f"/patient/{patient}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    done = demo.post(f"/patient/{patient}/consent", data={"csrf_token": csrf[1], "confirm": "yes"},
                     follow_redirects=False)
    assert done.status_code == 303
    location = done.headers["location"]
    key = re.search(r"notice=([a-z-]+)", location)
    assert key and key[1] in NOTICES
