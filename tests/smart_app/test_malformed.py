"""One malformed record from the FHIR server degrades that patient only: the registry shows it
as its own row, the patient's page says which resource is malformed, everyone else is served."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.paths import examples_dir
from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, ehr_launch, write_clinic

PATIENT = {"resourceType": "Patient", "id": "bad", "name": [{"text": "Bea Broken"}],
           "gender": "female", "birthDate": "1990-01-01"}
CAREPLAN = {
    "resourceType": "CarePlan", "id": "cp-bad", "status": "active", "intent": "plan",
    "identifier": [{"system": "https://bhi-fhir.dev/fhir/identifier", "value": "enroll:x"}],
    "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
    "subject": {"reference": "Patient/bad"}, "period": {"start": "2026-10-01"},
}

# (the broken Patient, the broken CarePlan, the resource the page must name)
CASES = {
    "name-a-string": ({**PATIENT, "name": "Bea Broken"}, CAREPLAN, "Patient/bad"),
    "name-list-of-strings": ({**PATIENT, "name": ["Bea Broken"]}, CAREPLAN, "Patient/bad"),
    "careplan-period-a-string": (PATIENT, {**CAREPLAN, "period": "2026-10-01"}, "CarePlan/cp-bad"),
}


def _clinic(tmp_path: Path, extra: list[dict[str, Any]]) -> Path:
    resources = []
    for path in sorted((examples_dir() / "clinic").glob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return write_clinic(tmp_path, [*resources, *extra])


@contextmanager
def _client(tmp_path: Path, extra: list[dict[str, Any]]) -> Iterator[TestClient]:
    settings = Settings(demo=True, demo_clinic=_clinic(tmp_path, extra), cookie_secure=False,
                        base_url=APP_URL, today="2026-11-26")
    with TestClient(create_app(settings), base_url=APP_URL,
                    raise_server_exceptions=False) as client:
        assert client.get("/demo", follow_redirects=False).status_code == 303
        yield client


def _rows(page: str) -> list[str]:
    table = page.split('id="registry"')[1].split("</table>")[0]
    return re.findall(r"<tr[^>]*>\s*<td>.*?</tr>", table, re.S)


@pytest.fixture
def healthy_rows(tmp_path: Path) -> int:
    (tmp_path / "healthy").mkdir()
    with _client(tmp_path / "healthy", []) as client:
        return len(_rows(client.get("/registry").text))


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_registry_shows_the_malformed_record_on_its_own_row(
    tmp_path: Path, healthy_rows: int, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    patient, careplan, _ = CASES[case]
    caplog.set_level(logging.INFO)
    with _client(tmp_path, [patient, careplan]) as client:
        page = client.get("/registry")
        assert page.status_code == 200
        rows = _rows(page.text)
        assert len(rows) == healthy_rows + 1  # everyone else is still listed
        bad = [r for r in rows if 'href="/patient/bad"' in r]
        assert len(bad) == 1 and "malformed record" in bad[0]
    assert "Bea Broken" not in caplog.text  # the log names the error type, no data


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_patient_page_names_the_malformed_resource(tmp_path: Path, case: str) -> None:
    patient, careplan, culprit = CASES[case]
    with _client(tmp_path, [patient, careplan]) as client:
        page = client.get("/patient/bad")
        assert page.status_code == 502
        assert "could not be read" in page.text and culprit in page.text
        assert "Content-Security-Policy" in page.headers
        good = re.search(r'href="/patient/([^"]+)"', client.get("/registry").text.split(
            'id="registry"')[1])
        assert good and client.get(f"/patient/{good[1]}").status_code == 200


def test_a_malformed_careplan_category_does_not_hide_the_registry(tmp_path: Path) -> None:
    """The demo clinic's own search for active BHI CarePlans skips what it cannot read."""
    broken = {**CAREPLAN, "id": "cp-odd", "category": "mental health"}
    with _client(tmp_path, [PATIENT, CAREPLAN, broken]) as client:
        assert client.get("/registry").status_code == 200


def test_a_malformed_patient_from_the_ehr_is_named_on_its_page(
    ehr: AuthServerState, app_client: TestClient
) -> None:
    ehr.resources["Patient/p1"]["name"] = "Ada Example"  # a string where a list belongs
    ehr_launch(app_client, ehr)
    page = app_client.get("/patient/p1")
    assert page.status_code == 502 and "Patient/p1" in page.text
