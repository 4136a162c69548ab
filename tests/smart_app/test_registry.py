"""The registry gathers its patients' records per page of patients (one batch Bundle of
searches), not 8 FHIR requests per enrolled patient."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.conftest import APP_URL


def test_registry_request_count_does_not_grow_with_patients() -> None:
    settings = Settings(demo=True, cookie_secure=False, base_url=APP_URL, today="2026-11-26")
    app = create_app(settings)
    with TestClient(app, base_url=APP_URL) as client:
        client.get("/demo", follow_redirects=False)
        source = app.state.demo_source
        before = source.request_count
        page = client.get("/registry")
        used = source.request_count - before
    assert page.status_code == 200
    rows = re.findall(
        r'<tr[^>]*>\s*<td><a href="/patient/',
        page.text.split('id="registry"')[1].split("</table>")[0],
    )
    assert len(rows) > 5
    assert used == 2  # enrolled-patient search + one batch for the page (was 1 + 8 per patient)
