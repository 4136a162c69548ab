"""`bhi-fhir bill --server` against respx: what is fetched (bounded by date), how many
requests a run takes, and the write-back's 412 handling (re-read, retry once, else report)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner

from bhi_fhir.billing.encounter import billing_encounter
from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
from bhi_fhir.billing.rules import BillingRules
from bhi_fhir.billing.server import _record, _update, first_window_start, records_from_server
from bhi_fhir.billing.writeback import plan_write
from bhi_fhir.cli import _register, app
from bhi_fhir.fhir import FhirClient

from .builders import BHCM, PATIENT, PCP, RULES, chart, entry
from .sources import S22_EPISODE, S43_VISIT

BASE = "http://127.0.0.1:8999/fhir"
RECORDED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
_register()


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


class FakeServer:
    """Answers billing's reads from a list of resources; records every request."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.requests: list[httpx.Request] = []
        self.encounter_windows: list[tuple[str, ...]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/fhir/")
        if "/" in path:
            kind, rid = path.split("/", 1)
            match = [r for r in self.resources if r["resourceType"] == kind and r["id"] == rid]
            return httpx.Response(200, json=match[0]) if match else httpx.Response(404)
        params = request.url.params
        if path == "Encounter" and "date" in params and "type" not in params:
            self.encounter_windows.append(tuple(params.get_list("date")))
        found = [r for r in self.resources if r["resourceType"] == path]
        if path == "Encounter" and "identifier" in params:
            found = []  # no bill written yet
        return httpx.Response(200, json=bundle(found))


@pytest.fixture
def router():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def test_first_window_is_episode_lookback_plus_visit_window():
    """Month 2026-10: 6 months back (2026-04-01, NC Medicaid, AMA) and 365 days before that (CMS
    MLN909432)."""
    rules = BillingRules(timezone="UTC")
    assert first_window_start(Month(2026, 10), rules) == datetime(2025, 4, 1, tzinfo=UTC), (
        S22_EPISODE,
        S43_VISIT,
    )


async def test_patient_history_is_requested_by_date(router):
    server = FakeServer([*chart(), entry("2026-10-05 10:00", 40)])
    router.route().mock(side_effect=server)
    async with FhirClient(BASE) as fhir:
        record = await _record(fhir, PATIENT, Month(2026, 10), RULES)
    # one day of slack each side (the server's zone), America/New_York months
    assert server.encounter_windows == [("ge2025-03-31", "lt2026-11-01")]
    assert len(record.encounters) == 2  # the time entry and the initiating visit


async def test_continuous_episode_reads_further_back(router):
    """Service every month since 2025-01: the episode began before the first window, so the
    rules need its start (episode of care: NC Medicaid citing AMA) and a year before it for the
    initiating visit (CMS MLN909432)."""
    monthly = [entry(f"{y}-{m:02d}-10 10:00", 20) for y, m in
               [(2025, m) for m in range(1, 13)] + [(2026, m) for m in range(1, 11)]]  # fmt: skip
    server = FakeServer([*chart(consent_on="2024-12-01"), *monthly])
    router.route().mock(side_effect=server)
    async with FhirClient(BASE) as fhir:
        record = await _record(fhir, PATIENT, Month(2026, 10), RULES)
    windows = server.encounter_windows
    assert windows[0] == ("ge2025-03-31", "lt2026-11-01")
    assert len(windows) >= 2, S22_EPISODE
    # episode from 2025-01: its 6 months before (2024-07) and 365 days before (2024-01-02, a
    # leap year), less the day of slack
    assert min(w[0] for w in windows) == "ge2024-01-01", S43_VISIT
    months, _ = close_month(record, Month(2026, 10), RULES)
    assert months[0].month_kind == "subsequent"
    assert months[0].episode_start == Month(2025, 1)
    # every Encounter once, however the windows overlapped
    assert len({e["id"] for e in record.encounters}) == len(record.encounters)


def test_report_counts_requests(router, tmp_path):
    server = FakeServer([*chart(), entry("2026-10-05 10:00", 40)])
    router.route().mock(side_effect=server)
    result = CliRunner().invoke(
        app,
        ["bill", "--month", "2026-10", "--server", BASE, "--dry-run", "--format", "json",
         "--billing-practitioner", PCP, "--timezone", "America/New_York",
         "--care-manager", BHCM],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requests"] == len(server.requests)
    # month entries, Patient, Encounter window, Consent/CarePlan/CareTeam/Condition/Coverage,
    # the month's bills (to find those whose time entries are all gone), the bill lookup:
    # 10 requests for one patient; nothing written on a dry run
    assert report["requests"] == 10
    assert all(r.method == "GET" for r in server.requests)
    assert report["summary"] == {"would-create": 1}


def _month(minutes: int):
    record = group_by_patient([*chart(), entry("2026-10-05 10:00", minutes)])[PATIENT]
    return close_month(record, Month(2026, 10), RULES)[0][0]


def _stored(month, version: str) -> dict[str, Any]:
    resource = copy.deepcopy(billing_encounter(month))
    resource["id"] = "bill1"
    resource["meta"]["versionId"] = version
    return resource


def _answer(*locations: str) -> dict[str, Any]:
    """A transaction-response: one entry per request entry, in order (R4 http.html)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "200 OK", "location": loc}} for loc in locations],
    }


def _found(resource: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=bundle([resource]))


async def test_stale_version_is_reread_and_retried_once(router):
    old, new = _month(40), _month(90)
    clash = httpx.Response(412, json={"resourceType": "OperationOutcome", "issue": []})
    ok = httpx.Response(
        200, json=_answer("Encounter/bill1/_history/3", "Provenance/pv3/_history/1")
    )
    posts = router.route(method="POST").mock(side_effect=[clash, ok])
    # someone else wrote version 2 (still the old content) meanwhile
    router.get("/Encounter").mock(return_value=_found(_stored(old, "2")))
    async with FhirClient(BASE, max_retries=0) as fhir:
        write = plan_write(new, _stored(old, "1"), RECORDED)
        assert await _update(fhir, write, RECORDED) == "updated"
    second = json.loads(posts.calls[1].request.content)
    assert second["entry"][0]["request"]["ifMatch"] == 'W/"2"'
    assert second["entry"][1]["resource"]["meta"]["tag"][0]["code"].endswith("-v3")


async def test_second_clash_is_reported_not_raised(router):
    old, new = _month(40), _month(90)
    clash = httpx.Response(409, json={"resourceType": "OperationOutcome", "issue": []})
    router.route(method="POST").mock(return_value=clash)
    router.get("/Encounter").mock(return_value=_found(_stored(old, "2")))
    async with FhirClient(BASE, max_retries=0) as fhir:
        write = plan_write(new, _stored(old, "1"), RECORDED)
        assert await _update(fhir, write, RECORDED) == "conflict"


async def test_clash_with_an_equal_bill_writes_nothing(router):
    old, new = _month(40), _month(90)
    posts = router.route(method="POST").mock(return_value=httpx.Response(412, json={}))
    router.get("/Encounter").mock(return_value=_found(_stored(new, "2")))
    async with FhirClient(BASE, max_retries=0) as fhir:
        write = plan_write(new, _stored(old, "1"), RECORDED)
        assert await _update(fhir, write, RECORDED) == "unchanged"
    assert posts.call_count == 1


async def test_month_patients_then_records(router):
    server = FakeServer([*chart(), entry("2026-10-05 10:00", 40)])
    router.route().mock(side_effect=server)
    async with FhirClient(BASE) as fhir:
        (record,) = await records_from_server(fhir, Month(2026, 10), RULES)
    assert record.patient == PATIENT and record.resource is not None


async def test_bill_created_by_another_run_meanwhile_is_brought_up_to_date(router):
    """Our lookup found nothing, but a concurrent run created the bill (with less time) before
    our conditional create: the create answers 200 (exists); the bill is re-read and updated."""
    from bhi_fhir.billing.server import write_months

    old, new = _month(40), _month(90)
    exists = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "200 OK", "location": "Encounter/bill1/_history/1"}},
        {"response": {"status": "200 OK", "location": "Provenance/pv1/_history/1"}},
    ]}  # fmt: skip
    updated = _answer("Encounter/bill1/_history/2", "Provenance/pv2/_history/1")
    posts = router.route(method="POST").mock(
        side_effect=[httpx.Response(200, json=exists), httpx.Response(200, json=updated)]
    )
    router.get("/Encounter").mock(return_value=_found(_stored(old, "1")))
    async with FhirClient(BASE, max_retries=0) as fhir:
        results = await write_months(fhir, [plan_write(new, None, RECORDED)], RECORDED)
    assert results == {new.identifier_value: "updated"}
    second = json.loads(posts.calls[1].request.content)
    assert second["entry"][0]["request"]["method"] == "PUT"


@pytest.mark.parametrize("flag", [False, True], ids=["proposed", "written"])
def test_bill_whose_entries_are_all_gone_is_cancelled_only_when_asked(router, flag):
    """The month's only time entry was marked entered-in-error after billing: the bill is
    found by the month's bill search and its cancellation is proposed (would-cancel), or with
    --cancel-orphaned-bills written as a versioned update (ifMatch) with its Provenance."""
    bill = _stored(_month(40), "1")

    class Server(FakeServer):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            params = request.url.params
            if request.method == "POST":
                self.requests.append(request)
                return httpx.Response(
                    200, json=_answer("Encounter/bill1/_history/2", "Provenance/pv2/_history/1")
                )
            if request.url.path.endswith("/Encounter") and "identifier" in params:
                self.requests.append(request)
                return httpx.Response(200, json=bundle([bill]))
            return super().__call__(request)

    server = Server([*chart(), entry("2026-10-05 10:00", 40, status="entered-in-error")])
    router.route().mock(side_effect=server)
    args = ["bill", "--month", "2026-10", "--server", BASE, "--format", "json",
            "--billing-practitioner", PCP, "--timezone", "America/New_York",
            "--care-manager", BHCM]  # fmt: skip
    result = CliRunner().invoke(app, [*args, *(["--cancel-orphaned-bills"] if flag else [])])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["patients"]
    assert row["result"] == ("cancelled" if flag else "would-cancel")
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == (1 if flag else 0)
    if flag:
        sent = json.loads(posts[0].content)
        assert sent["entry"][0]["request"]["ifMatch"] == 'W/"1"'
        assert sent["entry"][0]["resource"]["status"] == "entered-in-error"
        assert sent["entry"][1]["resource"]["resourceType"] == "Provenance"
