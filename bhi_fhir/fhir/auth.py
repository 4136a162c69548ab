"""How requests to a FHIR server are authenticated: none, a static bearer, SMART backend services.

Each scheme is an ``httpx.Auth`` flow (the sans-I/O idea): the flow yields requests and receives
responses, and the ``httpx.AsyncClient`` does the I/O. That way the token request and the
one re-authentication after a 401 go through the same client — same transport, timeout,
request counter and event hooks — and a 401 retry never spends one of the client's retries.

SMART Backend Services (SMART App Launch 2.2, backend-services.md):

* discover ``token_endpoint`` from ``{base}/.well-known/smart-configuration`` (unless given);
* POST ``grant_type=client_credentials`` with ``client_assertion_type=
  urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and a ``client_assertion`` JWT
  signed RS384 or ES384 (ES256 for a P-256 key), header ``kid``, ``typ: JWT`` and, when the
  client registered a JWKS URL, ``jku``; claims ``iss = sub = client_id``, ``aud = token URL``,
  ``exp`` at most five minutes ahead and a fresh ``jti``;
* without an explicit scope, ask for the v2 ``system/*.rs system/*.cu`` scopes, or what the
  server lists in ``scopes_supported`` for reading and writing (v1 ``system/*.read`` …);
* send the access token to the FHIR server's own origin only (backend-services.md: never to
  servers named in foreign references);
* there is no refresh token: cache the access token until shortly before ``expires_in`` runs
  out, then ask again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bhi_fhir.fhir.errors import (
    AuthError,
    InvalidResponse,
    RetryableError,
    ScopeRefused,
    error_class_for_status,
    error_from_response,
)
from bhi_fhir.fhir.smart_config import from_well_known

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; the spec's maximum
SUPPORTED_ALGS = ("RS384", "ES384", "ES256")
# What each need is asked as, best first: the v2 scope, a v2 superset, the v1 scope, a v1
# superset (SMART App Launch 2.2 scopes-and-launch-context.md, v1 → v2 map).
READ_SCOPES = ("system/*.rs", "system/*.cruds", "system/*.read", "system/*.*")
WRITE_SCOPES = ("system/*.cu", "system/*.cruds", "system/*.write", "system/*.*")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class NoAuth(httpx.Auth):
    """Unauthenticated access (a local HAPI, a public sandbox)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield request


class BearerAuth(httpx.Auth):
    """A static bearer token someone obtained elsewhere; a 401 is final."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # clock() value after which we fetch a new one


def load_private_key(pem: str | bytes, password: bytes | None = None) -> PrivateKey:
    """Load an RSA or EC private key from PEM; anything else is a configuration error."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("backend services need an RSA or EC private key")
    return key


def alg_for_key(key: PrivateKey) -> str:
    """The JWS ``alg`` a key signs with: RSA → RS384, EC P-384 → ES384, EC P-256 → ES256.

    An ES* signature's size is fixed by the curve (RFC 7518 §3.4), so the curve decides; other
    curves are refused rather than signed with a mismatched algorithm.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    curve = key.curve.name
    if curve == "secp384r1":
        return "ES384"
    if curve == "secp256r1":
        return "ES256"
    raise ValueError(f"EC curve {curve} is not supported: use P-384 (ES384) or P-256 (ES256)")


def public_jwk(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a key or of a private key's public half: never private
    members. ``kid``, ``alg`` and ``use`` are the caller's to add."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) \
        else key
    if isinstance(public, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(public, as_dict=True))
    return dict(ECAlgorithm.to_jwk(public, as_dict=True))


def client_assertion(
    key: PrivateKey, *, client_id: str, token_url: str, kid: str,
    jwks_url: str | None = None, now: float | None = None,
) -> str:
    """The signed JWT a confidential client authenticates a token request with
    (``private_key_jwt``, RFC 7523; SMART client-confidential-asymmetric and Backend Services):
    ``iss`` = ``sub`` = the client, ``aud`` the token endpoint, ``exp`` at most five minutes
    ahead, a new ``jti`` every time; header ``kid``, ``typ: JWT`` and, when given, ``jku``; the
    algorithm the key's type and curve fix (:func:`alg_for_key`)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": kid, "typ": "JWT"}
    if jwks_url:
        headers["jku"] = jwks_url
    return jwt.encode(claims, key, algorithm=alg_for_key(key), headers=headers)


def negotiate_scope(supported: Any, write: bool = True) -> str:
    """The scopes to ask for, given ``scopes_supported`` from the SMART configuration.

    Per need (read, and write unless ``write`` is False) the first of its candidates the server
    lists; the v2 scope when it lists none of them or advertises no list at all.
    """
    listed = {str(s) for s in supported} if isinstance(supported, list) else set()
    needs = (READ_SCOPES, WRITE_SCOPES) if write else (READ_SCOPES,)
    chosen: list[str] = []
    for candidates in needs:
        scope = next((s for s in candidates if s in listed), candidates[0])
        if scope not in chosen:
            chosen.append(scope)
    return " ".join(chosen)


def same_origin(url: str | httpx.URL, base: str | httpx.URL) -> bool:
    """Whether ``url`` has the scheme, host and port of ``base``."""
    a, b = httpx.URL(str(url)), httpx.URL(str(base))
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class BackendServicesAuth(httpx.Auth):
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion."""

    requires_response_body = True  # we read token responses and 401 bodies inside the flow

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        private_key: PrivateKey | str | bytes,
        kid: str,
        scope: str | None = None,
        write: bool = True,
        alg: str | None = None,
        token_url: str | None = None,
        jwks_url: str | None = None,
        expiry_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = load_private_key(private_key) if isinstance(private_key, str | bytes) else private_key
        if alg is not None and alg not in SUPPORTED_ALGS:
            raise ValueError(f"alg must be one of {SUPPORTED_ALGS}, not {alg}")
        self._alg = alg_for_key(key)
        if alg is not None and alg != self._alg:
            raise ValueError(f"a {alg} signature needs another key: this one signs {self._alg}")
        self._key = key
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._kid = kid
        self._scope = scope
        self._write = write
        self._token_url = token_url
        self._jwks_url = jwks_url
        self.granted_scope: str | None = None  # what the last token response said was granted
        self._margin = expiry_margin
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.token_requests = 0  # how many times we asked the token endpoint

    # --- the assertion -----------------------------------------------------------------------

    def client_assertion(self, token_url: str) -> str:
        """A fresh signed JWT for one token request (new ``jti`` every time)."""
        return client_assertion(self._key, client_id=self._client_id, token_url=token_url,
                                kid=self._kid, jwks_url=self._jwks_url, now=self._clock())

    # --- the flow ----------------------------------------------------------------------------

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not same_origin(request.url, self._base_url):
            raise AuthError(
                f"refusing to send the access token to {request.url.scheme}://"
                f"{request.url.netloc.decode()}: it is for {self._base_url} only"
            )
        # Two rounds at most: the request, then — after a 401 — one re-authentication.
        for _ in range(2):
            token = self._valid_token()
            if token is None:
                # One token request at a time; concurrent requests wait and reuse it.
                async with self._lock:
                    token = self._valid_token()
                    if token is None:
                        fetch = self._fetch_token()
                        sub_request = next(fetch)
                        while token is None:
                            reply = yield sub_request
                            # httpx leaves reading the body to an overridden async flow; on
                            # a real (streaming) transport .content is unread until then.
                            await reply.aread()
                            try:
                                sub_request = fetch.send(reply)
                            except StopIteration as done:
                                token = self._token = done.value
            request.headers["Authorization"] = f"Bearer {token.value}"
            response = yield request
            if response.status_code != 401:
                return
            if self._token is token:  # unless another request already replaced it
                self._token = None

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BackendServicesAuth is for httpx.AsyncClient only")

    def _valid_token(self) -> _Token | None:
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            return None
        return token

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, _Token]:
        if self._token_url is None:
            response = yield httpx.Request(
                "GET",
                f"{self._base_url}/.well-known/smart-configuration",
                headers={"Accept": "application/json"},
            )
            smart = from_well_known(_json_body(response, "SMART configuration"))
            if smart is None or smart.token_endpoint is None:
                raise AuthError(f"{self._base_url} advertises no token_endpoint")
            self._token_url = smart.token_endpoint
            if self._scope is None:
                self._scope = negotiate_scope(list(smart.scopes_supported), self._write)
        if self._scope is None:  # a token URL given, so no discovery: the v2 default
            self._scope = negotiate_scope(None, self._write)
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.client_assertion(self._token_url),
        }
        self.token_requests += 1
        response = yield httpx.Request(
            "POST",
            self._token_url,
            data=form,
            headers={"Accept": "application/json"},
        )
        _refused_scope(response, self._scope, self._client_id)
        body = _json_body(response, "token response")
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise AuthError("token response has no access_token")
        # The server may grant other scopes than asked (SMART 2.2); kept for the doctor.
        granted = body.get("scope")
        self.granted_scope = granted if isinstance(granted, str) else None
        missing = set(self._scope.split()) - set((self.granted_scope or self._scope).split())
        if missing:
            logger.warning(
                "token granted %r, not %s: some reads or writes may be refused",
                self.granted_scope, " ".join(sorted(missing)),
            )
        expires_in = _as_seconds(body.get("expires_in"), default=ASSERTION_LIFETIME)
        margin = min(self._margin, expires_in / 2)
        return _Token(access_token, self._clock() + expires_in - margin)


def _refused_scope(response: httpx.Response, scope: str, client_id: str) -> None:
    """An ``invalid_scope`` answer (RFC 6749 §5.2; Keycloak's to a scope the client may not
    have, rather than granting less) is ScopeRefused, saying what was asked and what to change."""
    if response.status_code != 400:
        return
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(body, dict) or body.get("error") != "invalid_scope":
        return
    said = body.get("error_description")
    raise ScopeRefused(
        f"the authorization server refused the scopes asked for as client {client_id!r}: "
        f"{scope!r} (invalid_scope{f': {said}' if isinstance(said, str) and said else ''}); "
        "ask for scopes the client is registered for with --scope, or have the server's "
        "administrator grant these to the client",
        status=400, method=response.request.method, path=response.request.url.path,
    )


def _as_seconds(value: Any, *, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def _json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    """Parse an OAuth/discovery response, turning failures into AuthError/RetryableError."""
    if response.status_code >= 400:
        if issubclass(error_class_for_status(response.status_code), RetryableError):
            raise error_from_response(response)
        raise error_from_response(response, cls=AuthError)
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResponse(f"{what} is not JSON", status=response.status_code) from exc
    if not isinstance(body, dict):
        raise InvalidResponse(f"{what} is not a JSON object", status=response.status_code)
    return body
