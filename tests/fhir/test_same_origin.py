"""The token stays with the server that it is for: URLs the server hands back that point to
another origin (paging links, Location headers, anything absolute) are refused, unsent.

SMART App Launch 2.2 backend-services.md: a client never sends its token to servers named in
foreign references.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from bhi_fhir.fhir import AuthError, BackendServicesAuth, BearerAuth, FhirClient, InvalidResponse
from bhi_fhir.fhir.auth import same_origin
from tests.fhir.conftest import BASE

EVIL = "https://evil.example"


@pytest.fixture
def mock() -> respx.MockRouter:
    """Routes for our server and for the foreign one, which must never be called."""
    return respx.MockRouter(assert_all_called=False)


def _client(mock: respx.MockRouter, auth: httpx.Auth | None = None) -> FhirClient:
    return FhirClient(
        BASE,
        auth=auth or BearerAuth("secret-token"),
        transport=httpx.MockTransport(mock.async_handler),
        max_retries=0,
    )


def _page(ident: str, next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": {"resourceType": "Patient", "id": ident}}],
    }


@pytest.mark.parametrize(
    ("url", "same"),
    [
        pytest.param(f"{BASE}/Patient?x=1", True, id="same-base"),
        pytest.param("http://fhir.test:80/other", True, id="default-port-spelled"),
        pytest.param("https://fhir.test/fhir", False, id="other-scheme"),
        pytest.param("http://fhir.test:8080/fhir", False, id="other-port"),
        pytest.param("http://fhir.test.evil.example/fhir", False, id="suffix-host"),
        pytest.param(f"{EVIL}/fhir", False, id="other-host"),
    ],
)
def test_same_origin(url: str, same: bool) -> None:
    assert same_origin(url, BASE) is same


@pytest.mark.parametrize("page", [1, 2], ids=["first-next-link", "later-next-link"])
async def test_foreign_next_link_is_refused_and_the_token_not_sent(
    mock: respx.MockRouter, page: int
) -> None:
    evil = mock.get(url__startswith=EVIL).mock(
        return_value=httpx.Response(200, json=_page("x", None))
    )
    second = f"{BASE}?page=2" if page == 2 else f"{EVIL}/steal?page=2"
    mock.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=_page("a", second)))
    mock.get(BASE, params={"page": "2"}).mock(
        return_value=httpx.Response(200, json=_page("b", f"{EVIL}/steal?page=3"))
    )
    async with _client(mock) as fhir:
        with pytest.raises(InvalidResponse, match="paging link points to another server") as err:
            _ = [r async for r in fhir.search("Patient")]
    assert evil.call_count == 0
    assert "https://evil.example" in str(err.value)
    assert "steal" not in str(err.value)  # origin only: paths and queries may hold PHI


async def test_foreign_location_header_is_refused(mock: respx.MockRouter) -> None:
    evil = mock.get(url__startswith=EVIL)
    mock.post(f"{BASE}/Patient").mock(
        return_value=httpx.Response(201, headers={"Location": f"{EVIL}/Patient/p1"})
    )
    async with _client(mock) as fhir:
        with pytest.raises(InvalidResponse, match="Location header points to another server"):
            await fhir.create({"resourceType": "Patient"})
    assert evil.call_count == 0


async def test_location_on_an_internal_host_under_our_base_is_read_from_our_server(
    mock: respx.MockRouter,
) -> None:
    """Servers behind a proxy advertise their internal host: the path is ours, so the read
    goes to our own origin (with the token), never to the advertised host."""
    internal = mock.get(url__startswith="http://10.0.0.5")
    mock.post(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            201, headers={"Location": "http://10.0.0.5:8080/fhir/Patient/p1/_history/1"}
        )
    )
    ours = mock.get(f"{BASE}/Patient/p1/_history/1").mock(
        return_value=httpx.Response(200, json={"resourceType": "Patient", "id": "p1"})
    )
    async with _client(mock) as fhir:
        created = await fhir.create({"resourceType": "Patient"})
    assert created["id"] == "p1"
    assert internal.call_count == 0
    assert ours.calls.last.request.headers["Authorization"] == "Bearer secret-token"


async def test_any_absolute_url_elsewhere_is_refused_before_auth(mock: respx.MockRouter) -> None:
    """Bulk status URLs, attachments, whatever else a caller follows: one rule."""
    evil = mock.get(url__startswith=EVIL)
    async with _client(mock) as fhir:
        with pytest.raises(InvalidResponse, match="not the server's own origin"):
            await fhir.request("GET", f"{EVIL}/bulk-status/1")
    assert evil.call_count == 0


async def test_backend_services_auth_never_signs_a_foreign_request(mock: respx.MockRouter) -> None:
    """The auth flow refuses on its own too, used outside FhirClient."""
    from cryptography.hazmat.primitives.asymmetric import ec

    evil = mock.get(url__startswith=EVIL)
    token = mock.post(url__startswith="http://auth.test")
    auth = BackendServicesAuth(
        BASE,
        client_id="c",
        private_key=ec.generate_private_key(ec.SECP256R1()),
        kid="k",
        token_url="http://auth.test/token",
    )
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(mock.async_handler)) as h:
        with pytest.raises(AuthError, match="refusing to send the access token"):
            await h.get(f"{EVIL}/fhir/Patient")
    assert evil.call_count == 0
    assert token.call_count == 0
