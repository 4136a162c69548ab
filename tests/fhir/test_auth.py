"""SMART backend services and bearer auth, with the token endpoint and FHIR server mocked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bhi_fhir.fhir import (
    AuthError,
    BackendServicesAuth,
    BearerAuth,
    FhirClient,
    RetryableError,
    Unauthorized,
)
from bhi_fhir.fhir.errors import EXIT_CONFIG, ScopeRefused
from tests.fhir.conftest import BASE

TOKEN_URL = "http://auth.test/oauth/token"
PATIENT = {"resourceType": "Patient", "id": "p1"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smart_server(router: respx.MockRouter) -> respx.MockRouter:
    router.get("/.well-known/smart-configuration").mock(
        return_value=httpx.Response(
            200,
            json={
                "token_endpoint": TOKEN_URL,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "capabilities": ["client-confidential-asymmetric"],
                "code_challenge_methods_supported": ["S256"],
            },
        )
    )
    return router


def token_responses(*tokens: str, expires_in: int = 300) -> list[httpx.Response]:
    return [
        httpx.Response(
            200,
            json={
                "access_token": t,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": "system/*.rs",
            },
        )
        for t in tokens
    ]


def bearer_of(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


def assertion_of(request: httpx.Request, scope: str = "system/*.rs system/*.cu") -> str:
    form = parse_qs(request.content.decode())
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    assert form["scope"] == [scope]
    return form["client_assertion"][0]


MakeClient = Callable[..., FhirClient]


@pytest.fixture
def make_client(router: respx.MockRouter, sleeps: list[float], clock: Clock) -> MakeClient:
    def make(
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, token_url: str | None = None
    ) -> FhirClient:
        auth = BackendServicesAuth(
            BASE,
            client_id="bhi-sync",
            private_key=key,
            kid="key-1",
            clock=clock,
            token_url=token_url,
        )
        return FhirClient(BASE, auth=auth, transport=httpx.MockTransport(router.async_handler))

    return make


@pytest.mark.parametrize(
    ("key_name", "alg"),
    [
        pytest.param("rsa_key", "RS384", id="RSA-RS384"),
        pytest.param("ec_key", "ES384", id="P384-ES384"),
        # A P-256 key used to be signed as ES384 whatever its curve: verifiers reject that.
        pytest.param("p256_key", "ES256", id="P256-ES256"),
    ],
)
async def test_token_request_carries_a_valid_client_assertion(
    request: pytest.FixtureRequest,
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    clock: Clock,
    key_name: str,
    alg: str,
) -> None:
    key = request.getfixturevalue(key_name)
    token_route = smart_server.post(TOKEN_URL).mock(side_effect=token_responses("t1", "t2"))
    fhir_route = smart_server.get("/Patient/p1").mock(
        return_value=httpx.Response(200, json=PATIENT)
    )

    issued_at = []
    async with make_client(key) as fhir:
        issued_at.append(clock.now)
        await fhir.read("Patient", "p1")
        clock.now += 301  # token expired → a second token request with a new assertion
        issued_at.append(clock.now)
        await fhir.read("Patient", "p1")

    assert token_route.call_count == 2
    assert [bearer_of(c.request) for c in fhir_route.calls] == ["t1", "t2"]
    jtis = []
    for call, now in zip(token_route.calls, issued_at, strict=True):
        assertion = assertion_of(call.request)
        header = jwt.get_unverified_header(assertion)
        assert header["alg"] == alg
        assert header["kid"] == "key-1"
        assert header["typ"] == "JWT"
        claims = jwt.decode(
            assertion,
            key.public_key(),
            algorithms=[alg],
            audience=TOKEN_URL,
            # signed at the test clock's time, not the wall clock's
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == "bhi-sync"
        assert claims["aud"] == TOKEN_URL
        assert claims["iat"] == int(now)
        assert 0 < claims["exp"] - now <= 300
        jtis.append(claims["jti"])
    assert len(set(jtis)) == 2


async def test_assertion_signed_with_another_key_does_not_verify(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    auth = BackendServicesAuth(BASE, client_id="c", private_key=other, kid="k")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            auth.client_assertion(TOKEN_URL),
            rsa_key.public_key(),
            algorithms=["RS384"],
            audience=TOKEN_URL,
        )


async def test_token_is_cached_until_shortly_before_expiry(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    token_route = smart_server.post(TOKEN_URL).mock(side_effect=token_responses("t1", "t2"))
    smart_server.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    discovery = smart_server.routes[0]
    async with make_client(rsa_key) as fhir:
        for _ in range(3):
            await fhir.read("Patient", "p1")
        assert token_route.call_count == 1
        clock.now += 269  # 300 s token, 30 s margin: still fresh
        await fhir.read("Patient", "p1")
        assert token_route.call_count == 1
        clock.now += 2  # inside the margin: renew before the server would refuse it
        await fhir.read("Patient", "p1")
        assert token_route.call_count == 2
        assert discovery.call_count == 1  # discovery is cached too
        # discovery + 2 tokens + 5 reads: sync reports count every request
        assert fhir.request_count == 8


async def test_401_reauthenticates_once_without_spending_a_retry(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
    sleeps: list[float],
) -> None:
    token_route = smart_server.post(TOKEN_URL).mock(side_effect=token_responses("t1", "t2"))
    seen: list[str] = []

    def revoke_first_token(request: httpx.Request) -> httpx.Response:
        seen.append(bearer_of(request))  # httpx reuses the request object: record now
        if bearer_of(request) == "t1":
            return httpx.Response(401)
        return httpx.Response(200, json=PATIENT)

    smart_server.get("/Patient/p1").mock(side_effect=revoke_first_token)
    async with make_client(rsa_key) as fhir:
        assert await fhir.read("Patient", "p1") == PATIENT
    assert token_route.call_count == 2
    assert seen == ["t1", "t2"]
    assert sleeps == []  # not treated as a retry


async def test_401_twice_is_unauthorized(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    token_route = smart_server.post(TOKEN_URL).mock(side_effect=token_responses("t1", "t2", "t3"))
    smart_server.get("/Patient/p1").mock(return_value=httpx.Response(401))
    async with make_client(rsa_key) as fhir:
        with pytest.raises(Unauthorized):
            await fhir.read("Patient", "p1")
    assert token_route.call_count == 2


async def test_token_endpoint_refusal_is_auth_error_with_description(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    smart_server.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400,
            json={"error": "invalid_client", "error_description": "kid key-1 is not registered"},
        )
    )
    fhir_route = smart_server.get("/Patient/p1")
    async with make_client(rsa_key) as fhir:
        with pytest.raises(AuthError, match="kid key-1 is not registered"):
            await fhir.read("Patient", "p1")
    assert fhir_route.call_count == 0


async def test_invalid_scope_is_scope_refused_saying_what_to_change(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    """RFC 6749 §5.2 invalid_scope (Keycloak's answer to a scope the client may not have):
    configuration, not a refusal of the client, so the message names the scopes and --scope."""
    smart_server.post(TOKEN_URL).mock(return_value=httpx.Response(
        400, json={"error": "invalid_scope", "error_description": "Invalid scopes: system/*.cu"}))
    async with make_client(rsa_key) as fhir:
        with pytest.raises(ScopeRefused) as refused:
            await fhir.read("Patient", "p1")
    message = str(refused.value)
    assert "'bhi-sync'" in message and "Invalid scopes: system/*.cu" in message
    assert "--scope" in message and refused.value.exit_code == EXIT_CONFIG


async def test_token_endpoint_503_is_retried(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    smart_server.post(TOKEN_URL).mock(side_effect=[httpx.Response(503), *token_responses("t1")])
    smart_server.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    async with make_client(rsa_key) as fhir:
        assert await fhir.read("Patient", "p1") == PATIENT


async def test_missing_token_endpoint(
    router: respx.MockRouter, make_client: MakeClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    router.get("/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
    async with make_client(rsa_key) as fhir:
        with pytest.raises(AuthError):
            await fhir.read("Patient", "p1")


async def test_explicit_token_url_skips_discovery(
    router: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    discovery = router.get("/.well-known/smart-configuration")
    router.post(TOKEN_URL).mock(side_effect=token_responses("t1"))
    router.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    async with make_client(rsa_key, token_url=TOKEN_URL) as fhir:
        await fhir.read("Patient", "p1")
    assert discovery.call_count == 0


def test_only_rs384_and_es384(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="RS384"):
        BackendServicesAuth(BASE, client_id="c", private_key=rsa_key, kid="k", alg="RS256")


async def test_static_bearer(router: respx.MockRouter, sleeps: list[float]) -> None:
    route = router.get("/Patient/p1").mock(
        side_effect=[httpx.Response(200, json=PATIENT), httpx.Response(401)]
    )
    transport = httpx.MockTransport(router.async_handler)
    async with FhirClient(BASE, auth=BearerAuth("abc"), transport=transport) as fhir:
        await fhir.read("Patient", "p1")
        with pytest.raises(Unauthorized):
            await fhir.read("Patient", "p1")
    assert route.calls[0].request.headers["Authorization"] == "Bearer abc"
    assert route.call_count == 2


def test_retryable_is_not_auth_error() -> None:
    assert not issubclass(RetryableError, AuthError)


async def test_concurrent_requests_share_one_token_request(
    smart_server: respx.MockRouter, make_client: MakeClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    responses = iter(token_responses("t1", "t2"))

    async def slow_token_endpoint(request: httpx.Request) -> httpx.Response:
        for _ in range(10):  # give every other request the chance to reach the token lock
            await asyncio.sleep(0)
        return next(responses)

    token_route = smart_server.post(TOKEN_URL).mock(side_effect=slow_token_endpoint)
    smart_server.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    async with make_client(rsa_key) as fhir:
        results = await asyncio.gather(*(fhir.read("Patient", "p1") for _ in range(8)))
    assert results == [PATIENT] * 8
    assert token_route.call_count == 1


async def test_token_response_is_read_on_a_streaming_transport(
    rsa_key: rsa.RSAPrivateKey, sleeps: list[float]
) -> None:
    """A real transport streams bodies: the flow must read the token response itself (httpx
    only does so for flows it runs). MockTransport hides this; respx.mock patches the real one."""
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/.well-known/smart-configuration").mock(
            return_value=httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        )
        mock.post(TOKEN_URL).mock(side_effect=token_responses("t1"))
        route = mock.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
        auth = BackendServicesAuth(BASE, client_id="c", private_key=rsa_key, kid="k")
        async with FhirClient(BASE, auth=auth) as fhir:
            assert await fhir.read("Patient", "p1") == PATIENT
        assert bearer_of(route.calls.last.request) == "t1"


async def test_a_narrower_grant_is_logged(
    smart_server: respx.MockRouter,
    make_client: MakeClient,
    rsa_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SMART 2.2 app-launch.md: the server may grant other scopes; the client inspects them."""
    smart_server.post(TOKEN_URL).mock(side_effect=token_responses("t1"))  # grants system/*.rs
    smart_server.get("/Patient/p1").mock(return_value=httpx.Response(200, json=PATIENT))
    async with make_client(rsa_key) as fhir:
        await fhir.read("Patient", "p1")
    assert "not system/*.cu" in caplog.text
    assert fhir._http.auth.granted_scope == "system/*.rs"  # type: ignore[attr-defined]
