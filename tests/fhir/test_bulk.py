"""Bulk Data $export client against a respx router: what a real server will not do on demand
(Retry-After as a date, 429/503 while polling, error files, a crash and its resume, a server
without $export, files elsewhere). One broken thing a test."""

from __future__ import annotations

import email.utils
import json
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner

from bhi_fhir.cli import app
from bhi_fhir.exit_codes import EXIT_TEMPFAIL
from bhi_fhir.fhir import BearerAuth, FhirClient, InvalidResponse, RetryableError
from bhi_fhir.fhir.bulk import STATE_FILE, ExportRequest, FolderInUse, export, parse_since
from bhi_fhir.fhir.errors import NotFound, Unsupported, exit_code_for
from bhi_fhir.sources import SourceError, read_resources
from tests.fhir.conftest import BASE, outcome

STATUS = f"{BASE}/$export-poll-status?_jobId=j1"
PATIENT = {"resourceType": "Patient", "id": "p1"}
OBS = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
       "subject": {"reference": "Patient/p1"}}
DELETED = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"request": {"method": "DELETE", "url": "Patient/gone"}}]}
CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "rest": [{
        "mode": "server",
        "operation": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/"
                       "OperationDefinition/export"}],
        "resource": [
            {"type": "Patient", "operation": [{"name": "export"}]},
            {"type": "Group", "operation": [{"name": "export"}]},
        ],
    }],
}


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


def manifest(**extra: Any) -> dict[str, Any]:
    return {
        "transactionTime": "2026-11-30T00:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": "Patient", "url": f"{BASE}/Binary/f1"},
            {"type": "Observation", "url": f"{BASE}/Binary/f2"},
            {"type": "Observation", "url": f"{BASE}/Binary/f3"},
        ],
        "deleted": [{"type": "Bundle", "url": f"{BASE}/Binary/d1"}],
        "error": [],
        **extra,
    }


def serve(router: respx.MockRouter, *, polls: list[httpx.Response] | None = None,
          done: dict[str, Any] | None = None) -> dict[str, respx.Route]:
    """A whole export: metadata, kick-off, polls then the manifest, the files, DELETE."""
    routes = {
        "metadata": router.get("/metadata").respond(200, json=CAPABILITY),
        "kickoff": router.get("/$export").respond(202, headers={"Content-Location": STATUS}),
        "status": router.get(STATUS).mock(
            side_effect=[*(polls or []), httpx.Response(200, json=done or manifest())]),
        "delete": router.delete(STATUS).respond(202),
        "f1": router.get("/Binary/f1").respond(200, content=ndjson(PATIENT)),
        "f2": router.get("/Binary/f2").respond(200, content=ndjson(OBS)),
        "f3": router.get("/Binary/f3").respond(200, content=ndjson(OBS, OBS)),
        "d1": router.get("/Binary/d1").respond(200, content=ndjson(DELETED)),
    }
    return routes


async def test_system_export_writes_the_folder_apply_reads(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    routes = serve(router, polls=[
        httpx.Response(202, headers={"X-Progress": "50% done", "Retry-After": "7"})])
    heard: list[str] = []
    request = ExportRequest(types=("Patient", "Observation"), since="2026-01-01T00:00:00Z",
                            type_filters=("Observation?category=survey", "Patient?active=true"))
    result = await export(client, request, tmp_path, report=heard.append)

    sent = routes["kickoff"].calls.last.request
    assert sent.headers["Prefer"] == "respond-async"
    assert sent.headers["Accept"] == "application/fhir+json"
    assert sent.url.params.get_list("_typeFilter") == [
        "Observation?category=survey", "Patient?active=true"]
    assert sent.url.params["_type"] == "Patient,Observation"
    assert sent.url.params["_since"] == "2026-01-01T00:00:00Z"
    assert sent.url.params["_outputFormat"] == "application/fhir+ndjson"
    assert sleeps == [7.0]
    assert any("50% done" in line for line in heard)
    assert routes["delete"].call_count == 1
    assert routes["f1"].calls.last.request.headers["Accept"] == "application/fhir+ndjson"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "Observation.2.ndjson", "Observation.ndjson", "Patient.ndjson", STATE_FILE,
        "deleted/Bundle.ndjson"]
    assert result.by_type() == {"Patient": 1, "Observation": 3}
    assert result.count("deleted") == 1
    assert result.transaction_time == "2026-11-30T00:00:00Z"
    # The one NDJSON reader takes the folder as is: the export's resources, nothing else
    # (the state file is not FHIR; a deleted Bundle's DELETE entries are no resources).
    read = list(read_resources([tmp_path]))
    assert not [r for r in read if isinstance(r, SourceError)]
    assert sorted(r["resourceType"] for r in read if isinstance(r, dict)) == [
        "Observation", "Observation", "Observation", "Patient"]


async def test_retry_after_as_an_http_date_is_honoured(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    serve(router, polls=[httpx.Response(202, headers={"Retry-After": when})])
    await export(client, ExportRequest(), tmp_path)
    assert len(sleeps) == 1 and 35 <= sleeps[0] <= 40


async def test_polling_backs_off_without_retry_after_and_caps_the_wait(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    serve(router, polls=[httpx.Response(202)] * 4 + [
        httpx.Response(202, headers={"Retry-After": "3600"})])
    await export(client, ExportRequest(), tmp_path, max_poll_interval=5)
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_429_and_503_while_polling_wait_and_poll_on(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    routes = serve(router, polls=[
        httpx.Response(429, headers={"Retry-After": "11"}),
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(202),
    ])
    result = await export(client, ExportRequest(), tmp_path)
    # 429: as asked; 503: the client's own retry, as asked; then the second poll's backoff.
    assert sleeps == [11.0, 2.0, 2.0]
    assert routes["status"].call_count == 4
    assert result.by_type() == {"Patient": 1, "Observation": 3}


async def test_error_files_are_kept_and_surfaced(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    serve(router, done=manifest(error=[{"type": "OperationOutcome", "url": f"{BASE}/Binary/e1"}]))
    router.get("/Binary/e1").respond(200, content=ndjson(
        outcome("Observation/o9 could not be exported", code="exception")))
    result = await export(client, ExportRequest(), tmp_path)
    assert (tmp_path / "error" / "OperationOutcome.ndjson").is_file()
    assert len(result.errors) == 1
    assert "[exception]" in result.errors[0] and "could not be exported" in result.errors[0]


async def test_an_export_that_failed_on_the_server_is_raised(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    serve(router)
    router.get(STATUS).respond(400, json=outcome("export job failed"))
    with pytest.raises(Exception, match="export job failed"):
        await export(client, ExportRequest(), tmp_path)


async def test_group_and_patient_level_kick_offs(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    serve(router)
    group = router.get("/Group/g1/$export").respond(202, headers={"Content-Location": STATUS})
    await export(client, ExportRequest(group="g1", types=("Patient",)), tmp_path / "g")
    assert group.calls.last.request.url.params["_type"] == "Patient"

    router.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
    some = router.post("/Patient/$export").respond(202, headers={"Content-Location": STATUS})
    await export(client, ExportRequest(patients=("p1", "Patient/p2")), tmp_path / "p")
    body = json.loads(some.calls.last.request.content)
    assert body["resourceType"] == "Parameters"
    assert [p["valueReference"]["reference"] for p in body["parameter"]
            if p["name"] == "patient"] == ["Patient/p1", "Patient/p2"]
    assert some.calls.last.request.headers["Prefer"] == "respond-async"

    every = router.get("/Patient/$export").respond(202, headers={"Content-Location": STATUS})
    await export(client, ExportRequest(all_patients=True), tmp_path / "all")
    assert every.call_count == 1


@pytest.mark.parametrize(
    ("answer", "capability"),
    [
        pytest.param(httpx.Response(404, json=outcome("Unknown operation")), CAPABILITY, id="404"),
        pytest.param(httpx.Response(405), CAPABILITY, id="405"),
        pytest.param(httpx.Response(501), CAPABILITY, id="501"),
        pytest.param(None, {"resourceType": "CapabilityStatement",
                            "rest": [{"mode": "server", "resource": [{"type": "Patient"}]}]},
                     id="not-in-capability-statement"),
    ],
)
async def test_a_server_without_export_is_unsupported(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path,
    answer: httpx.Response | None, capability: dict[str, Any],
) -> None:
    router.get("/metadata").respond(200, json=capability)
    kickoff = router.get("/$export").mock(return_value=answer or httpx.Response(500))
    with pytest.raises(Unsupported) as caught:
        await export(client, ExportRequest(), tmp_path)
    assert exit_code_for(caught.value) == 78
    assert kickoff.call_count == (0 if answer is None else 1)


async def test_an_unknown_group_is_not_found_not_unsupported(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    router.get("/metadata").respond(200, json=CAPABILITY)
    router.get("/Group/nope/$export").respond(404, json=outcome("Group/nope is not known"))
    with pytest.raises(NotFound):
        await export(client, ExportRequest(group="nope"), tmp_path)


async def test_a_crash_while_downloading_resumes_with_the_files_left(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    routes = serve(router)
    routes["f3"].mock(return_value=httpx.Response(500))
    with pytest.raises(RetryableError):
        await export(client, ExportRequest(), tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert [f["done"] for f in state["files"]] == [True, True, False, False]
    assert not (tmp_path / "Observation.2.ndjson").exists()
    (tmp_path / "Observation.2.ndjson.part").write_bytes(b'{"resourceType":"Obs')  # torn

    for route in routes.values():
        route.reset()
    routes["f3"].mock(return_value=httpx.Response(200, content=ndjson(OBS, OBS)))
    result = await export(client, ExportRequest(), tmp_path)
    assert result.resumed
    assert routes["kickoff"].call_count == 0 and routes["status"].call_count == 0
    assert routes["f1"].call_count == 0 and routes["f2"].call_count == 0
    assert routes["f3"].call_count == 1 and routes["d1"].call_count == 1
    assert routes["delete"].call_count == 1
    assert not list(tmp_path.glob("*.part"))
    assert (tmp_path / "Observation.2.ndjson").read_bytes() == ndjson(OBS, OBS)
    assert result.by_type() == {"Patient": 1, "Observation": 3}


async def test_a_crash_while_polling_resumes_polling_the_same_export(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    routes = serve(router)
    routes["status"].mock(return_value=httpx.Response(503))
    with pytest.raises(RetryableError):
        await export(client, ExportRequest(), tmp_path)
    assert json.loads((tmp_path / STATE_FILE).read_text())["status_url"] == STATUS

    routes["status"].mock(side_effect=[httpx.Response(202), httpx.Response(200, json=manifest())])
    await export(client, ExportRequest(), tmp_path)
    assert routes["kickoff"].call_count == 1  # the first run's only


async def test_an_export_the_server_forgot_is_started_again(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    routes = serve(router)
    routes["status"].mock(side_effect=[httpx.Response(404), httpx.Response(200, json=manifest())])
    result = await export(client, ExportRequest(), tmp_path)
    assert routes["kickoff"].call_count == 2
    assert result.by_type() == {"Patient": 1, "Observation": 3}


async def test_a_folder_with_another_export_is_refused(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    serve(router)
    await export(client, ExportRequest(types=("Patient",)), tmp_path)
    with pytest.raises(FolderInUse):
        await export(client, ExportRequest(types=("Observation",)), tmp_path)


async def test_a_finished_export_is_not_repeated(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    routes = serve(router)
    await export(client, ExportRequest(), tmp_path)
    calls = {name: route.call_count for name, route in routes.items()}
    await export(client, ExportRequest(), tmp_path)
    assert {name: route.call_count for name, route in routes.items()} == calls


# --- same token, same server ----------------------------------------------------------------


@pytest.fixture
async def bearer_client(router: respx.MockRouter, sleeps: list[float]
                        ) -> AsyncIterator[FhirClient]:
    async with FhirClient(BASE, auth=BearerAuth("secret"), max_retries=1,
                          transport=httpx.MockTransport(router.async_handler)) as fhir:
        yield fhir


async def test_files_needing_the_token_must_be_on_the_server(
    bearer_client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    elsewhere = "https://files.example/export/f1.ndjson"
    serve(router, done=manifest(output=[{"type": "Patient", "url": elsewhere}]))
    foreign = router.get(elsewhere).respond(200, content=ndjson(PATIENT))
    with pytest.raises(InvalidResponse, match="another server"):
        await export(bearer_client, ExportRequest(), tmp_path)
    assert foreign.call_count == 0


async def test_files_needing_no_token_are_fetched_without_it(
    bearer_client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    elsewhere = "https://files.example/export/f1.ndjson?sig=abc"
    routes = serve(router, done=manifest(requiresAccessToken=False, deleted=[],
                                         output=[{"type": "Patient", "url": elsewhere}]))
    foreign = router.get(elsewhere).respond(200, content=ndjson(PATIENT))
    await export(bearer_client, ExportRequest(), tmp_path)
    assert "Authorization" not in foreign.calls.last.request.headers
    assert routes["status"].calls.last.request.headers["Authorization"] == "Bearer secret"


async def test_a_status_url_on_another_origin_is_refused(
    bearer_client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    router.get("/metadata").respond(200, json=CAPABILITY)
    router.get("/$export").respond(
        202, headers={"Content-Location": "https://evil.example/status/1"})
    with pytest.raises(InvalidResponse, match="another server"):
        await export(bearer_client, ExportRequest(), tmp_path)


# --- streaming --------------------------------------------------------------------------------


class _Lines(httpx.AsyncByteStream):
    """``count`` NDJSON lines, made as they are read; optionally the connection drops."""

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        line = json.dumps(OBS).encode() + b"\n"
        for i in range(0, self.count, 1000):
            if self.fail_after is not None and i >= self.fail_after:
                raise httpx.ReadError("connection reset")
            yield line * min(1000, self.count - i)


async def test_a_large_file_streams_to_disk_in_flat_memory(
    client: FhirClient, router: respx.MockRouter, tmp_path: Path
) -> None:
    lines = 200_000  # about 25 MB
    serve(router, done=manifest(deleted=[], output=[{"type": "Observation",
                                                     "url": f"{BASE}/Binary/big"}]))
    router.get("/Binary/big").mock(side_effect=lambda request: httpx.Response(
        200, stream=_Lines(lines)))
    tracemalloc.start()
    try:
        result = await export(client, ExportRequest(), tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.by_type() == {"Observation": lines}
    assert (tmp_path / "Observation.ndjson").stat().st_size > 20_000_000
    assert peak < 4_000_000


async def test_a_connection_lost_mid_file_downloads_it_again(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float], tmp_path: Path
) -> None:
    serve(router, done=manifest(deleted=[], output=[{"type": "Observation",
                                                     "url": f"{BASE}/Binary/big"}]))
    streams = iter([_Lines(5000, fail_after=2000), _Lines(5000)])
    router.get("/Binary/big").mock(
        side_effect=lambda request: httpx.Response(200, stream=next(streams)))
    result = await export(client, ExportRequest(), tmp_path)
    assert result.by_type() == {"Observation": 5000}
    assert len(sleeps) == 1


# --- options and the command --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        pytest.param("2026-03-01", "2026-03-01T00:00:00Z", id="date-is-midnight-utc"),
        pytest.param("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", id="instant"),
        pytest.param("2026-03-01T10:00:00-05:00", "2026-03-01T10:00:00-05:00", id="offset"),
    ],
)
def test_since(given: str, sent: str) -> None:
    assert parse_since(given) == sent


@pytest.mark.parametrize("given", ["2026-03-01T10:00:00", "yesterday"],
                         ids=["no-zone", "not-a-date"])
def test_since_refused(given: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(given)


def test_group_and_patients_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        ExportRequest(group="g", patients=("p",))


def test_command_exits_78_on_a_server_without_export(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/metadata").respond(200, json={"resourceType": "CapabilityStatement",
                                                 "rest": [{"mode": "server"}]})
        result = CliRunner().invoke(app, ["export", "--server", BASE, "--out", str(tmp_path)])
    assert result.exit_code == 78, result.output
    assert "does not offer Bulk Data $export" in result.output


def test_command_writes_the_folder_and_a_summary(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as mock:
        serve(mock)
        result = CliRunner().invoke(app, ["export", "--server", BASE, "--out", str(tmp_path),
                                          "--type", "Patient,Observation"])
    assert result.exit_code == 0, result.output
    assert "resources: Observation 3, Patient 1" in result.output
    assert (tmp_path / "Patient.ndjson").is_file()


def test_command_refuses_a_folder_of_another_export(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as mock:
        serve(mock)
        first = CliRunner().invoke(app, ["export", "--server", BASE, "--out", str(tmp_path)])
        assert first.exit_code == 0, first.output
        second = CliRunner().invoke(app, ["export", "--server", BASE, "--out", str(tmp_path),
                                          "--type", "Patient"])
    assert second.exit_code == EXIT_TEMPFAIL  # busy: run again later
    assert "holds another export" in second.output
