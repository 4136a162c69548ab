"""The protected mode of the local HAPI: a SMART resource server in front of it.

    python tools/hapi/gateway/smart_gateway.py        (see tools/hapi/gateway/start)

Every FHIR request needs ``Authorization: Bearer <access token>`` issued by the configured
authorization server (the local Keycloak, tools/keycloak). A token is accepted when

* its ``iss`` is that issuer (checked before any key is looked up),
* its signature verifies with a key of the issuer's JWKS (``jwks_uri`` of its OpenID
  configuration, cached; an unknown ``kid`` refetches once),
* it has not expired, and its ``aud`` holds ``BHI_GATEWAY_AUDIENCE`` when that is set,
* its ``scope`` grants the interaction on the resource type: SMART v2 ``system/<Type|*>.<cruds>``
  (v1 ``.read``/``.write``/``.*`` read as ``rs``/``cud``/``cruds``), for a transaction or batch
  every entry's.

Refusals follow RFC 6750: 401 ``invalid_token`` (missing, expired, wrong issuer, bad signature or
audience) and 403 ``insufficient_scope``, each with an OperationOutcome. ``/metadata`` and
``/.well-known/smart-configuration`` are open; the latter points at the issuer's token endpoint
and advertises ``client_credentials`` with ``private_key_jwt`` (ES384, RS384) and the SMART
capabilities ``client-confidential-asymmetric`` and ``permission-v2``.

Everything else is passed to the unprotected HAPI (``BHI_GATEWAY_UPSTREAM``) with the client's
``Host`` header, so the links and ``Location`` headers HAPI writes name this gateway. Responses
are streamed through unchanged. ``GET /_gateway/stats`` (test instrumentation, open) counts the
requests and the distinct access tokens seen per client (``azp``) and the refusals by reason.
Logs hold reasons and client ids only, never URLs, queries or bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

logger = logging.getLogger("smart_gateway")

FHIR_PREFIX = "/fhir"
# The SMART v2 system scopes the local Keycloak's realm offers (tools/keycloak/bhi-realm.json).
SCOPES_SUPPORTED = (
    "system/*.rs", "system/*.cu", "system/*.cruds", "system/Patient.rs",
    "system/QuestionnaireResponse.rs", "system/Observation.cruds",
)
SIGNING_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384")
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "authorization", "content-length",
})
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class Refused(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


@dataclass
class Settings:
    upstream: str
    issuer: str
    audience: str | None
    scopes_supported: tuple[str, ...] = SCOPES_SUPPORTED

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            upstream=os.environ.get("BHI_GATEWAY_UPSTREAM", "http://127.0.0.1:8080").rstrip("/"),
            issuer=os.environ.get(
                "BHI_GATEWAY_ISSUER", "http://127.0.0.1:8180/realms/bhi"
            ).rstrip("/"),
            audience=os.environ.get("BHI_GATEWAY_AUDIENCE", "bhi-fhir-server") or None,
        )


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    tokens: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    refused: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clients": {
                client: {"requests": n, "tokens": len(self.tokens[client])}
                for client, n in self.requests.items()
            },
            "refused": dict(self.refused),
        }


# --- scopes ------------------------------------------------------------------------------------

def granted(scope: str) -> dict[str, set[str]]:
    """Resource type (or ``*``) → the interactions (c r u d s) the scope string grants.

    Scopes with v2 search constraints (``?category=…``) grant nothing here: this server does not
    evaluate them, so it refuses rather than over-grants.
    """
    grants: dict[str, set[str]] = defaultdict(set)
    for item in scope.split():
        match = _SCOPE.match(item)
        if match and match.group(2):
            resource_type, letters = match.groups()
            grants[resource_type] |= set(_V1.get(letters, letters))
    return grants


def allows(grants: dict[str, set[str]], resource_type: str, interaction: str) -> bool:
    if resource_type == "?":  # a page of an earlier search: any search grant
        return any("s" in letters for letters in grants.values())
    return interaction in grants.get(resource_type, set()) | grants.get("*", set())


def interactions(method: str, path: str, body: bytes | None) -> list[tuple[str, str]]:
    """(resource type, SMART v2 interaction letter) pairs the request needs."""
    parts = [p for p in path.split("/") if p]
    method = method.upper()
    if not parts:
        if method == "POST":
            return _bundle_interactions(body)
        return [("?", "s")]  # paging (?_getpages=…) or a system search
    head = parts[0]
    if head.startswith("$") or head.startswith("_"):
        return [("*", "s" if head == "_history" else "r")]
    if len(parts) == 1:
        return [(head, {"GET": "s", "POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}.get(
            method, "r"))]
    second = parts[1]
    if second in ("_search", "_history"):
        return [(head, "s")]
    if second.startswith("$"):
        return [(head, "r")]
    return [(head, {"GET": "r", "HEAD": "r", "PUT": "u", "PATCH": "u", "DELETE": "d",
                    "POST": "u"}.get(method, "r"))]


def _bundle_interactions(body: bytes | None) -> list[tuple[str, str]]:
    try:
        bundle = json.loads(body or b"")
    except ValueError:
        raise Refused(403, "insufficient_scope", "a bundle this server cannot read") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Refused(403, "insufficient_scope", "POST to the base needs a Bundle")
    needed: list[tuple[str, str]] = []
    for entry in bundle.get("entry") or []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise Refused(403, "insufficient_scope", "a bundle entry without a request")
        url = urlsplit(str(request.get("url", "")))
        needed += interactions(str(request.get("method", "GET")), url.path, None)
    return needed


# --- tokens ------------------------------------------------------------------------------------

class TokenChecker:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._config: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._lock = asyncio.Lock()

    async def issuer_config(self) -> dict[str, Any]:
        if self._config is None:
            url = f"{self._settings.issuer}/.well-known/openid-configuration"
            response = await self._http.get(url)
            response.raise_for_status()
            self._config = response.json()
        return self._config

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for refetch in (False, True):
            async with self._lock:
                if self._jwks is None or refetch:
                    config = await self.issuer_config()
                    response = await self._http.get(config["jwks_uri"])
                    response.raise_for_status()
                    self._jwks = jwt.PyJWKSet.from_dict(response.json())
                for key in self._jwks.keys:
                    if key.key_id == kid:
                        return key
        raise Refused(401, "invalid_token", "signed with a key the issuer does not publish")

    async def check(self, token: str) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused(401, "invalid_token", "not a JWT") from None
        if unverified.get("iss") != self._settings.issuer:
            raise Refused(401, "invalid_token", "wrong issuer")
        alg = header.get("alg")
        if alg not in SIGNING_ALGS:
            raise Refused(401, "invalid_token", "unacceptable signing algorithm")
        key = await self._key(header.get("kid"))
        audience = self._settings.audience
        try:
            return jwt.decode(
                token, key.key, algorithms=[str(alg)], issuer=self._settings.issuer,
                audience=audience,
                options={"require": ["exp", "iss"], "verify_aud": bool(audience)},
            )
        except jwt.ExpiredSignatureError:
            raise Refused(401, "invalid_token", "expired") from None
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
            raise Refused(401, "invalid_token", f"claims: {exc}") from None
        except jwt.PyJWTError:
            raise Refused(401, "invalid_token", "bad signature") from None


# --- the app -----------------------------------------------------------------------------------

def _outcome(status: int, error: str, reason: str) -> JSONResponse:
    code = "login" if status == 401 else "forbidden"
    return JSONResponse(
        {"resourceType": "OperationOutcome",
         "issue": [{"severity": "error", "code": code, "diagnostics": reason}]},
        status_code=status,
        media_type="application/fhir+json",
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{reason}"'},
    )


def _headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in items if k.lower() not in HOP_BY_HOP]


def build_app(settings: Settings) -> Starlette:
    http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))
    upstream = httpx.AsyncClient(base_url=settings.upstream, timeout=httpx.Timeout(600.0))
    checker = TokenChecker(settings, http)
    stats = Stats()

    async def smart_configuration(request: Request) -> Response:
        config = await checker.issuer_config()
        return JSONResponse({
            "token_endpoint": config["token_endpoint"],
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
            "scopes_supported": list(settings.scopes_supported),
            "capabilities": ["client-confidential-asymmetric", "permission-v2"],
            "code_challenge_methods_supported": ["S256"],
        })

    async def stats_view(request: Request) -> Response:
        return JSONResponse(stats.to_dict())

    async def proxy(request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        fhir_path = path[len(FHIR_PREFIX):]
        if not (request.method == "GET" and fhir_path.strip("/") == "metadata"):
            authorization = request.headers.get("authorization", "")
            scheme, _, token = authorization.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise Refused(401, "invalid_token", "no bearer token")
                claims = await checker.check(token.strip())
                client = str(claims.get("azp") or claims.get("client_id") or claims.get("sub"))
                grants = granted(str(claims.get("scope") or ""))
                for resource_type, letter in interactions(request.method, fhir_path, body):
                    if not allows(grants, resource_type, letter):
                        raise Refused(403, "insufficient_scope", f"the token's scopes do not "
                                      f"allow {letter} on {resource_type}")
            except Refused as refused:
                stats.refused[refused.reason.split(":")[0]] += 1
                logger.info("refused %s: %s", request.method, refused.reason)
                return _outcome(refused.status, refused.error, refused.reason)
            stats.requests[client] += 1
            stats.tokens[client].add(str(claims.get("jti") or token[-16:]))
        outgoing = upstream.build_request(
            request.method,
            path + (f"?{request.url.query}" if request.url.query else ""),
            headers=[*_headers(request.headers.items()), ("host", request.headers["host"])],
            content=body,
        )
        response = await upstream.send(outgoing, stream=True)
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers=dict(_headers(response.headers.multi_items())),
            background=BackgroundTask(response.aclose),
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()
        await upstream.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route(f"{FHIR_PREFIX}/.well-known/smart-configuration", smart_configuration),
            Route("/_gateway/stats", stats_view),
            Route(FHIR_PREFIX, proxy, methods=methods),
            Route(FHIR_PREFIX + "/{rest:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines hold URLs and queries
    port = int(os.environ.get("BHI_GATEWAY_PORT", "8181"))
    uvicorn.run(build_app(Settings.from_env()), host="127.0.0.1", port=port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
