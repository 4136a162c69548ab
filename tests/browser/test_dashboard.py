"""The practice dashboard in Chromium, over the demo clinic (examples/clinic, today 2026-11-26):
every metric's chart drawn, a CSV downloaded, and the page as printed for the quarterly review
(navigation and controls hidden). Screenshots and the printed PDF go to test-artifacts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import ServerThread, free_port


@pytest.fixture
def demo_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(demo=True, cookie_secure=False, base_url=url, today="2026-11-26")
    with ServerThread(create_app(settings), port=port):
        yield url


def test_dashboard_charts_csv_and_print(page: Any, demo_url: str, screenshots: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.goto(f"{demo_url}/demo")
    page.goto(f"{demo_url}/dashboard?period=2026-Q4")
    page.wait_for_selector("html[data-charts]", timeout=30_000)
    canvases = page.locator("canvas[data-metric]").count()
    assert canvases >= 7
    assert page.get_attribute("html", "data-charts") == str(canvases)
    assert page.locator("section.metric").count() == 9
    assert "no feedback collected" in page.inner_text("#metric-feedback")
    assert errors == []
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#metric-minutes a.csv")
    saved = screenshots / "dashboard-minutes.csv"
    download.value.save_as(str(saved))
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert rows[0] == ["month", "patient-months", "mean minutes", "billable", "billable %"]
    assert [r[0] for r in rows[1:]] == ["2026-10", "2026-11"]

    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert not page.locator("#print-page").is_visible()
    assert page.locator("#metric-caseload table").is_visible()
    page.screenshot(path=str(screenshots / "dashboard-print.png"), full_page=True)
    page.pdf(path=str(screenshots / "dashboard-quarterly-review.pdf"), format="A4")
