"""The practice dashboard (smart_app/dashboard.py): figures with definitions, CSV downloads
(GET, no side effect), care team only, everything escaped, episodes kept between views."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.paths import examples_dir
from bhi_fhir.registry.model import compute_rows, server_key
from bhi_fhir.store import Store
from bhi_fhir.store.registry import put_registry_rows, read_registry, registry_built_at
from smart_app.config import Settings
from smart_app.dashboard import current_quarter, dashboard_figures, parse_period, stored_rows
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, ehr_launch, write_clinic

HOSTILE = '=HYPERLINK("x")<img src=x onerror=alert(1)>'


def _clinic() -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for path in sorted((examples_dir() / "clinic").glob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return resources


# One more enrolled patient whose care plan names a contributor the practice plan does not
# know: the dashboard shows the reference itself as the care manager (escaped, CSV-safe).
EXTRA = [
    {"resourceType": "Patient", "id": "px", "name": [{"text": "X Test"}]},
    {"resourceType": "CarePlan", "id": "cp-px", "status": "active", "intent": "plan",
     "identifier": [{"system": BHI_IDENTIFIER, "value": "enroll.careplan:px"}],
     "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
     "subject": {"reference": "Patient/px"}, "period": {"start": "2026-10-01"},
     "contributor": [{"reference": HOSTILE}]},
]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(demo=True, demo_clinic=write_clinic(tmp_path, [*_clinic(), *EXTRA]),
                        cookie_secure=False, base_url=APP_URL, today="2026-11-26")
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        client.get("/demo", follow_redirects=False)
        yield client


def test_the_page_shows_every_metric_with_its_definition(demo: TestClient) -> None:
    page = demo.get("/dashboard", params={"period": "2026-Q4"})
    assert page.status_code == 200
    for metric in ("caseload", "screen-to-contact", "phq9-followup", "psychiatric-review",
                   "response-remission", "crisis", "minutes", "measures", "feedback"):
        assert f'id="metric-{metric}"' in page.text
        assert f'href="/dashboard/{metric}.csv?period=2026-Q4"' in page.text
    assert page.text.count("Source: ") == 9
    assert "no feedback collected" in page.text
    assert "@media print" not in page.text  # print CSS in the stylesheet (CSP: 'self' only)
    assert '<script src="/static/dashboard.js">' in page.text
    assert "<script>" not in page.text  # no inline script


def test_default_period_is_the_current_quarter(demo: TestClient) -> None:
    assert current_quarter(date(2026, 11, 26)) == "2026-Q4"
    assert current_quarter(date(2026, 1, 1)) == "2026-Q1"
    assert 'value="2026-Q4"' in demo.get("/dashboard").text


def test_everything_is_escaped(demo: TestClient) -> None:
    page = demo.get("/dashboard", params={"period": "2026-Q4"}).text
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the table cell
    assert "\\u003cimg src=x" in page  # the chart's JSON (tojson)


def test_csv_download(demo: TestClient) -> None:
    answer = demo.get("/dashboard/caseload.csv", params={"period": "2026-Q4"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == \
        'attachment; filename="bhi-caseload-2026-10-01_2026-12-31.csv"'
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["care manager", "patients", "capacity"]
    by_name = {r[0]: r[1:] for r in rows[1:]}
    # examples/clinic/README.md: Garcia 6 of 60, Okafor 7 of 45
    assert by_name["Ana Garcia, LCSW (BHCM)"] == ["6", "60"]
    assert by_name["Chinedu Okafor, RN (BHCM)"] == ["7", "45"]
    assert by_name["'" + HOSTILE] == ["1", ""]  # never run as a formula


def test_all_figures_in_one_csv(demo: TestClient) -> None:
    answer = demo.get("/dashboard/all.csv", params={"period": "2026-Q4"})
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["metric"] for r in rows} >= {"caseload", "minutes", "measures"}
    assert {"period", "metric", "row", "column", "value"} == set(rows[0])


def test_csv_of_an_unknown_metric_or_period(demo: TestClient) -> None:
    assert demo.get("/dashboard/nothing.csv").status_code == 404
    refused = demo.get("/dashboard", params={"period": "<b>2026-Q9</b>"})
    assert refused.status_code == 400 and "<b>2026-Q9" not in refused.text


def test_a_patient_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr_launch(app_client, ehr, fhirUser="Patient/p1")
    assert app_client.get("/dashboard").status_code == 403
    assert app_client.get("/dashboard/caseload.csv").status_code == 403


def test_no_read_model_yet_is_said_and_nothing_is_built(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.grant_scope = "openid fhirUser user/*.rs"  # a clinician reading many patients
    ehr_launch(app_client, ehr, fhirUser="Practitioner/cm1")
    page = app_client.get("/dashboard")
    assert page.status_code == 200 and 'id="no-registry"' in page.text
    assert app_client.get("/dashboard/caseload.csv").status_code == 404
    assert ehr.transactions == []
    store = app_client.app.state.registry_store  # type: ignore[attr-defined]
    assert registry_built_at(store, ehr.fhir_base.rstrip("/")) is None
    assert read_registry(store, ehr.fhir_base.rstrip("/")) == []


class CountingSource:
    """The records of the bundled clinic, counting which patients were read."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        for resource in _clinic():
            if resource["resourceType"] == "Patient":
                self.records.setdefault(resource["id"], []).insert(0, resource)
            else:
                ref = (resource.get("subject") or resource.get("patient")
                       or resource.get("for") or resource.get("beneficiary") or {})
                pid = str(ref.get("reference", "")).removeprefix("Patient/")
                self.records.setdefault(pid, []).append(resource)
        self.read: list[str] = []

    async def patients_resources(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        self.read += ids
        return {i: self.records[i] for i in ids if i in self.records}


def test_episodes_are_kept_until_the_row_is_read_again() -> None:
    source = CountingSource()
    today, period = date(2026, 11, 26), parse_period("2026-Q4")
    enrolled = {i: r for i, r in source.records.items()
                if any(x["resourceType"] == "CarePlan" for x in r)}
    rows = [{**row, "read_at": "t1"} for row in compute_rows(enrolled, today, None).values()]
    kept: dict[str, Any] = {}
    first = asyncio.run(dashboard_figures(rows, source, today, None, period, kept))  # type: ignore[arg-type]
    assert sorted(source.read) == sorted(r["id"] for r in rows)
    source.read.clear()
    again = asyncio.run(dashboard_figures(rows, source, today, None, period, kept))  # type: ignore[arg-type]
    assert source.read == [] and again.metrics == first.metrics
    rows[0] = {**rows[0], "read_at": "t2"}  # sync refreshed this patient's row
    asyncio.run(dashboard_figures(rows, source, today, None, period, kept))  # type: ignore[arg-type]
    assert source.read == [rows[0]["id"]]


def test_with_an_ehr_the_figures_come_from_the_read_model_and_the_records(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    """The registry's stored rows say who is enrolled; the records come from the EHR (one
    batch per page of patients), once: a second view reads nothing again."""
    source = CountingSource()
    enrolled = {i: r for i, r in source.records.items()
                if any(x["resourceType"] == "CarePlan" for x in r)}
    for record in enrolled.values():
        for resource in record:
            ehr.resources[f"{resource['resourceType']}/{resource['id']}"] = resource
    ehr.grant_scope = "openid fhirUser user/*.rs"
    ehr_launch(app_client, ehr, fhirUser="Practitioner/cm1")
    app = app_client.app
    rows = compute_rows(enrolled, date(2026, 11, 26), app.state.practice_plan)  # type: ignore[attr-defined]
    store = Store.open()
    try:
        put_registry_rows(store, server_key(ehr.fhir_base), rows, day="2026-11-26",
                          read_at=datetime.now(UTC), source="build")
    finally:
        store.close()
    page = app_client.get("/dashboard", params={"period": "2026-Q4"})
    assert page.status_code == 200, page.text
    assert "13 patients across 2 care managers" in page.text
    cache = app.state.dashboard_episodes  # type: ignore[attr-defined]
    (kept,) = cache._entries.values()
    assert len(kept) == 13
    for key in list(ehr.resources):  # the EHR forgets them: a second view must not need them
        if not key.startswith("Patient/p1"):
            del ehr.resources[key]
    again = app_client.get("/dashboard", params={"period": "2026-Q4"})
    assert "13 patients across 2 care managers" in again.text


def test_a_refresh_within_the_same_second_is_a_new_read(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        first = datetime(2026, 11, 26, 12, 0, 0, 100_000, tzinfo=UTC)
        put_registry_rows(store, "s", {"p1": {"id": "p1"}}, day="2026-11-26", read_at=first,
                          source="build")
        (before,) = stored_rows(store, "s")
        put_registry_rows(store, "s", {"p1": {"id": "p1"}}, day="2026-11-26",
                          read_at=first.replace(microsecond=900_000), source="sync")
        (after,) = stored_rows(store, "s")
    finally:
        store.close()
    assert before["read_at"] != after["read_at"]  # the kept episode is not reused
