"""FhirClient against a respx router: retries, errors, paging, writes; one broken thing a test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from bhi_fhir.fhir import (
    BadRequest,
    FhirClient,
    Gone,
    InvalidResponse,
    NotFound,
    PreconditionFailed,
    RequestTimeout,
    RetryableError,
    TransportError,
    Unprocessable,
)
from tests.fhir.conftest import BASE, outcome

PATIENT = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}}


# --- retries ------------------------------------------------------------------------------------


async def test_429_retry_after_seconds_is_honoured(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    router.get("/Patient/p1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=PATIENT),
        ]
    )
    assert await client.read("Patient", "p1") == PATIENT
    assert sleeps == [7.0]
    assert client.request_count == 2


async def test_retry_after_is_capped_at_backoff_max(
    router: respx.MockRouter, sleeps: list[float]
) -> None:
    router.get("/Patient/p1").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "86400"}),
            httpx.Response(200, json=PATIENT),
        ]
    )
    transport = httpx.MockTransport(router.async_handler)
    async with FhirClient(BASE, transport=transport, backoff_max=12) as fhir:
        await fhir.read("Patient", "p1")
    assert sleeps == [12]


async def test_burst_of_503_then_success(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    route = router.get("/Patient/p1").mock(
        side_effect=[httpx.Response(503)] * 3 + [httpx.Response(200, json=PATIENT)]
    )
    assert await client.read("Patient", "p1") == PATIENT
    assert route.call_count == 4
    assert len(sleeps) == 3
    # full jitter under base·2^n (base 0.5)
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


async def test_gives_up_after_max_retries(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    body = outcome("database is restarting")
    route = router.get("/Patient/p1").mock(return_value=httpx.Response(503, json=body))
    with pytest.raises(RetryableError) as info:
        await client.read("Patient", "p1")
    assert route.call_count == 4  # 1 + max_retries=3
    assert len(sleeps) == 3
    assert info.value.status == 503
    assert "database is restarting" in str(info.value)
    assert client.request_count == 4


async def test_timeouts_are_retried_then_raised_as_request_timeout(
    client: FhirClient, router: respx.MockRouter
) -> None:
    route = router.get("/Patient/p1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RequestTimeout):
        await client.read("Patient", "p1")
    assert route.call_count == 4


@pytest.mark.parametrize("exc", [httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError])
async def test_connection_resets_are_retried(
    client: FhirClient, router: respx.MockRouter, exc: type[httpx.TransportError]
) -> None:
    router.get("/Patient/p1").mock(side_effect=[exc("reset"), httpx.Response(200, json=PATIENT)])
    assert await client.read("Patient", "p1") == PATIENT


async def test_unreachable_server_is_a_transport_error(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.get("/metadata").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as info:
        await client.capabilities()
    assert "fhir.test" in str(info.value)


async def test_plain_post_is_not_repeated_after_an_ambiguous_failure(
    client: FhirClient, router: respx.MockRouter
) -> None:
    """The server may have stored it before the connection dropped: no duplicate writes."""
    route = router.post("/Observation").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RequestTimeout):
        await client.create({"resourceType": "Observation"})
    assert route.call_count == 1


async def test_plain_post_is_repeated_when_the_server_never_saw_it(
    client: FhirClient, router: respx.MockRouter
) -> None:
    created = {"resourceType": "Observation", "id": "o1"}
    route = router.post("/Observation").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(429),
            httpx.Response(201, json=created),
        ]
    )
    assert await client.create({"resourceType": "Observation"}) == created
    assert route.call_count == 3


async def test_conditional_create_is_retried(client: FhirClient, router: respx.MockRouter) -> None:
    created = {"resourceType": "Task", "id": "t1"}
    route = router.post("/Task").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(201, json=created)]
    )
    result = await client.create({"resourceType": "Task"}, if_none_exist="identifier=s|1")
    assert result == created
    assert route.call_count == 2


async def test_fatal_errors_are_not_retried(
    client: FhirClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    route = router.get("/Patient/nope").mock(
        return_value=httpx.Response(404, json=outcome("Resource Patient/nope is not known"))
    )
    with pytest.raises(NotFound) as info:
        await client.read("Patient", "nope")
    assert route.call_count == 1 and sleeps == []
    assert info.value.status == 404
    assert info.value.outcome is not None
    assert "Resource Patient/nope is not known" in str(info.value)


async def test_gone(client: FhirClient, router: respx.MockRouter) -> None:
    router.get("/Patient/old").mock(return_value=httpx.Response(410))
    with pytest.raises(Gone):
        await client.read("Patient", "old")


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"{not json", b"<html>oops</html>", b"[1, 2]", b""])
async def test_malformed_json_is_invalid_response(
    client: FhirClient, router: respx.MockRouter, content: bytes
) -> None:
    router.get("/Patient/p1").mock(return_value=httpx.Response(200, content=content))
    with pytest.raises(InvalidResponse):
        await client.read("Patient", "p1")


async def test_operation_outcome_becomes_the_message(
    client: FhirClient, router: respx.MockRouter
) -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "business-rule",
                "details": {"text": "Observation.status is required"},
                "expression": ["Observation.status"],
            }
        ],
    }
    router.post("/Observation").mock(return_value=httpx.Response(422, json=body))
    with pytest.raises(Unprocessable) as info:
        await client.create({"resourceType": "Observation"})
    assert str(info.value) == (
        "POST /fhir/Observation → 422 error [business-rule] Observation.status: "
        "Observation.status is required"
    )
    assert info.value.outcome == body


async def test_fhir_json_headers(client: FhirClient, router: respx.MockRouter) -> None:
    route = router.post("/Patient").mock(return_value=httpx.Response(201, json=PATIENT))
    await client.create({"resourceType": "Patient"})
    sent = route.calls.last.request
    assert sent.headers["Accept"] == "application/fhir+json"
    assert sent.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(sent.content) == {"resourceType": "Patient"}


# --- writes -------------------------------------------------------------------------------------


async def test_conditional_create_sends_if_none_exist(
    client: FhirClient, router: respx.MockRouter
) -> None:
    route = router.post("/Task").mock(
        return_value=httpx.Response(200, json={"resourceType": "Task", "id": "existing"})
    )
    result = await client.create(
        {"resourceType": "Task"}, if_none_exist={"identifier": "https://bhi|rule-1"}
    )
    assert result["id"] == "existing"
    assert (
        route.calls.last.request.headers["If-None-Exist"] == "identifier=https%3A%2F%2Fbhi%7Crule-1"
    )


async def test_create_reads_location_when_body_is_empty(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.post("/Patient").mock(
        return_value=httpx.Response(201, headers={"Location": f"{BASE}/Patient/p1/_history/1"})
    )
    router.get("/Patient/p1/_history/1").mock(return_value=httpx.Response(200, json=PATIENT))
    assert await client.create({"resourceType": "Patient"}) == PATIENT


async def test_versioned_update_sends_weak_etag(
    client: FhirClient, router: respx.MockRouter
) -> None:
    route = router.put("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    await client.update(PATIENT, if_match="1")
    assert route.calls.last.request.headers["If-Match"] == 'W/"1"'


async def test_stale_if_match_is_precondition_failed(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.put("/Patient/p1").mock(
        return_value=httpx.Response(412, json=outcome("version 1 is not current (2)"))
    )
    with pytest.raises(PreconditionFailed) as info:
        await client.update(PATIENT, if_match='W/"1"')
    assert info.value.status == 412
    assert "version 1 is not current" in str(info.value)


async def test_hapi_409_on_if_match_is_precondition_failed(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.put("/Patient/p1").mock(return_value=httpx.Response(409, json=outcome("conflict")))
    with pytest.raises(PreconditionFailed) as info:
        await client.update(PATIENT, if_match=1)
    assert info.value.status == 409


async def test_transaction_posts_to_base_and_checks_type(
    client: FhirClient, router: respx.MockRouter
) -> None:
    route = router.post(BASE).mock(
        return_value=httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []}
        )
    )
    result = await client.transaction({"resourceType": "Bundle", "type": "transaction"})
    assert result["type"] == "transaction-response"
    assert route.call_count == 1
    with pytest.raises(ValueError, match="transaction"):
        await client.transaction({"resourceType": "Bundle", "type": "batch"})


async def test_failed_transaction_raises_with_outcome(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).mock(return_value=httpx.Response(400, json=outcome("entry 2 invalid")))
    with pytest.raises(BadRequest, match="entry 2 invalid"):
        await client.transaction({"resourceType": "Bundle", "type": "transaction"})


async def test_validate_returns_the_outcome_even_on_412(
    client: FhirClient, router: respx.MockRouter
) -> None:
    body = outcome("Patient.gender: unknown code 'banana'")
    route = router.post("/Patient/$validate").mock(return_value=httpx.Response(412, json=body))
    result = await client.validate(
        {"resourceType": "Patient", "gender": "banana"}, profile="http://example.org/p"
    )
    assert result == body
    sent = route.calls.last.request
    assert json.loads(sent.content) == {"resourceType": "Patient", "gender": "banana"}
    assert sent.url.params["profile"] == "http://example.org/p"


async def test_validate_unwraps_a_parameters_answer(
    client: FhirClient, router: respx.MockRouter
) -> None:
    body = outcome("all good", severity="information", code="informational")
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "return", "resource": body}]}
    router.post("/Patient/$validate").mock(return_value=httpx.Response(200, json=wrapped))
    assert await client.validate({"resourceType": "Patient"}) == body


async def test_delete(client: FhirClient, router: respx.MockRouter) -> None:
    router.delete("/Patient/p1").mock(return_value=httpx.Response(204))
    assert await client.delete("Patient", "p1") is None


# --- paging -------------------------------------------------------------------------------------


def _page(ids: list[str], next_url: str | None, include: str | None = None) -> dict[str, Any]:
    entries = [
        {"resource": {"resourceType": "Patient", "id": i}, "search": {"mode": "match"}} for i in ids
    ]
    if include:
        entries.append(
            {
                "resource": {"resourceType": "Organization", "id": include},
                "search": {"mode": "include"},
            }
        )
    links = [{"relation": "self", "url": "ignored"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


async def test_search_follows_next_links_across_pages(
    client: FhirClient, router: respx.MockRouter
) -> None:
    first = router.get("/Patient", params={"_tag": "s|run", "_count": "2"}).mock(
        return_value=httpx.Response(200, json=_page(["a", "b"], f"{BASE}?_getpages=x&o=2"))
    )
    router.get(BASE, params={"_getpages": "x", "o": "2"}).mock(
        return_value=httpx.Response(
            200, json=_page(["c", "d"], f"{BASE}?_getpages=x&o=4", include="org1")
        )
    )
    router.get(BASE, params={"_getpages": "x", "o": "4"}).mock(
        return_value=httpx.Response(200, json=_page(["e"], None))
    )
    ids = [r["id"] async for r in client.search("Patient", {"_tag": "s|run", "_count": 2})]
    assert ids == ["a", "b", "c", "d", "e"]  # the included Organization is not a match
    assert first.call_count == 1
    assert client.request_count == 3

    pages = [b async for b in client.search_bundle("Patient", {"_tag": "s|run", "_count": 2})]
    assert len(pages) == 3
    assert any(e["resource"]["resourceType"] == "Organization" for e in pages[1]["entry"])


async def test_repeated_include_params(client: FhirClient, router: respx.MockRouter) -> None:
    route = router.get("/QuestionnaireResponse").mock(
        return_value=httpx.Response(200, json=_page([], None))
    )
    params = [
        ("_include", "QuestionnaireResponse:subject"),
        ("_include", "QuestionnaireResponse:questionnaire"),
        ("_lastUpdated", "ge2026-11-01"),
        ("_lastUpdated", "lt2026-11-26"),
    ]
    assert [r async for r in client.search("QuestionnaireResponse", params)] == []
    query = route.calls.last.request.url.params
    assert query.get_list("_include") == [
        "QuestionnaireResponse:subject",
        "QuestionnaireResponse:questionnaire",
    ]
    assert query.get_list("_lastUpdated") == ["ge2026-11-01", "lt2026-11-26"]


async def test_next_link_on_internal_host_is_rebased(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.get("/Patient").mock(
        return_value=httpx.Response(200, json=_page(["a"], "http://10.0.0.5:8080/fhir?p=2"))
    )
    page2 = router.get(BASE, params={"p": "2"}).mock(
        return_value=httpx.Response(200, json=_page(["b"], None))
    )
    assert [r["id"] async for r in client.search("Patient")] == ["a", "b"]
    assert page2.call_count == 1


async def test_next_link_to_another_server_is_refused(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.get("/Patient").mock(
        return_value=httpx.Response(200, json=_page(["a"], "https://evil.example/steal?p=2"))
    )
    with pytest.raises(InvalidResponse, match="another server"):
        _ = [r async for r in client.search("Patient")]


async def test_search_needs_a_bundle(client: FhirClient, router: respx.MockRouter) -> None:
    router.get("/Patient").mock(return_value=httpx.Response(200, json={"resourceType": "Patient"}))
    with pytest.raises(InvalidResponse):
        _ = [r async for r in client.search("Patient")]


# --- concurrency --------------------------------------------------------------------------------


async def test_concurrency_is_capped(router: respx.MockRouter, sleeps: list[float]) -> None:
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, json=PATIENT)

    router.get("/Patient/p1").mock(side_effect=slow)
    transport = httpx.MockTransport(router.async_handler)
    async with FhirClient(BASE, transport=transport, max_concurrency=3) as fhir:
        tasks = [asyncio.create_task(fhir.read("Patient", "p1")) for _ in range(10)]
        for _ in range(20):  # let every task get as far as it can
            await asyncio.sleep(0)
        assert in_flight == 3
        release.set()
        await asyncio.gather(*tasks)
    assert peak == 3
    assert fhir.request_count == 10


# --- logs ---------------------------------------------------------------------------------------


async def test_logs_carry_no_bodies_or_query_values(
    client: FhirClient, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="bhi_fhir.fhir")
    router.get("/Patient").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=_page(["a"], None))]
    )
    router.post("/Patient").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=PATIENT)]
    )
    _ = [r async for r in client.search("Patient", {"name": "Jane Doe", "birthdate": "1970"})]
    await client.create({"resourceType": "Patient", "name": [{"family": "Doe"}]})
    logged = caplog.text
    assert "GET Patient → 200" in logged  # method, type and status are there
    assert "retry 1/3" in logged
    for secret in ("Jane", "Doe", "1970"):
        assert secret not in logged


_SENT = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Task"}, "request": {"method": "POST", "url": "Task"}},
    {"resource": {"resourceType": "Provenance"},
     "request": {"method": "POST", "url": "Provenance"}},
]}


def _answer(*entries: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                     "entry": [{"response": e} for e in entries]})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(_answer({"status": "201 Created", "location": "Task/1/_history/1"}),
                     id="fewer-entries"),
        pytest.param(_answer({"status": "201"}, {"status": "201"}, {"status": "201"}),
                     id="more-entries"),
        pytest.param(_answer({"status": "201 Created"}, {"status": "412 Precondition Failed"}),
                     id="an-entry-not-2xx"),
        pytest.param(_answer({"status": "201 Created"}, {}), id="an-entry-without-status"),
        pytest.param(_answer({"status": "201 Created", "location": "Task/1/_history/1"},
                             {"status": "201 Created", "location": "Task/2/_history/1"}),
                     id="entries-out-of-order-type"),
        pytest.param(httpx.Response(200, headers={"Content-Type": "text/html"},
                                    content=b"<html>Sign in</html>"), id="login-page"),
    ],
)
async def test_a_transaction_answer_that_does_not_match_the_request_is_invalid(
    client: FhirClient, router: respx.MockRouter, answer: httpx.Response
) -> None:
    router.post(BASE).mock(return_value=answer)
    with pytest.raises(InvalidResponse):
        await client.transaction(_SENT)


async def test_a_matching_transaction_answer_is_returned(
    client: FhirClient, router: respx.MockRouter
) -> None:
    answer = _answer({"status": "201 Created", "location": f"{BASE}/Task/1/_history/1"},
                     {"status": "200 OK", "location": "Provenance/7/_history/2"})
    router.post(BASE).mock(return_value=answer)
    result = await client.transaction(_SENT)
    assert len(result["entry"]) == 2
