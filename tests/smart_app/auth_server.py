"""A faithful SMART App Launch 2.2 EHR for tests: authorization server + token-checking FHIR proxy.

Served by uvicorn on 127.0.0.1 in a thread (:class:`ServerThread`). What it does, per the spec:

* ``GET /fhir/.well-known/smart-configuration`` — absolute URLs,
  ``code_challenge_methods_supported`` (``["S256"]`` unless a test changes it), capabilities
  (v2 unless a test asks for v1 only).
* ``GET /fhir/metadata`` — a CapabilityStatement with the legacy ``oauth-uris`` extension.
* ``GET /authorize`` — checks ``response_type=code``, a registered ``client_id`` and its
  ``redirect_uri``, ``state``, ``aud`` == the FHIR base, ``code_challenge_method=S256`` with a
  challenge, the ``launch`` scope whenever a ``launch`` value is sent (and that the value is one it
  issued); auto-approves and redirects with ``code`` and ``state``. Errors go back as
  ``error=…&state=…`` (RFC 6749 §4.1.2.1).
* ``POST /token`` — ``authorization_code``: single-use code, same ``redirect_uri``, PKCE S256
  verification of ``code_verifier``; public clients must send ``client_id`` in the body,
  confidential ones HTTP Basic. ``refresh_token``: rotates (the old refresh token stops working).
  Responses carry ``Cache-Control: no-store`` and the launch context.
* ``id_token`` (``openid`` granted and a ``fhirUser`` in the context): RS256, signed with a key
  published at ``jwks_uri`` (``/jwks``, named in the smart-configuration and in the OIDC
  discovery document ``/.well-known/openid-configuration``); ``iss`` = the issuer, ``aud`` = the
  client, ``iat``/``exp``, and the ``nonce`` of the authorize request. Tests break it on purpose
  with ``id_token_claims`` (override claims) and ``id_token_signer`` (another key, same ``kid``).
* ``/fhir/{path}`` — everything else needs a live bearer token and is proxied to the real FHIR
  server (HAPI) given as ``backend``.

``requests`` records every request (method, path) so tests can assert what was — or was not —
sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

_SIGNING_KEYS: list[rsa.RSAPrivateKey] = []


def signing_key(index: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys made once per test run (key generation is slow)."""
    while len(_SIGNING_KEYS) <= index:
        _SIGNING_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _SIGNING_KEYS[index]


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    import json

    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class Client:
    client_id: str
    redirect_uri: str
    secret: str | None = None  # None: public client (unless public_key is set)
    public_key: str | None = None  # PEM: private_key_jwt (client-confidential-asymmetric.md)
    kid: str | None = None


@dataclass
class AuthServerState:
    base: str = ""  # http://127.0.0.1:<port>
    backend: str | None = None  # real FHIR server the proxy forwards to
    clients: dict[str, Client] = field(default_factory=dict)
    launches: dict[str, dict[str, Any]] = field(default_factory=dict)  # launch id → context
    standalone_patient: str | None = None
    standalone_user: str | None = None  # the fhirUser of a standalone launch's sign-in
    code_challenge_methods: list[str] = field(default_factory=lambda: ["S256"])
    capabilities: list[str] = field(
        default_factory=lambda: [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-ehr-patient",
            "context-standalone-patient",
            "permission-v2",
            "permission-patient",
            "permission-user",
            "sso-openid-connect",
        ]
    )
    well_known: bool = True
    grant_scope: str | None = None  # grant other scopes than requested (spec allows)
    expires_in: int = 3600
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" (no backend)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorize_params: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)  # posted (no backend)
    id_token_kid: str = "idt-1"  # the kid in the id_token header
    jwks_kid: str = "idt-1"  # the kid the key is published under at /jwks
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides (tests)
    id_token_signer: rsa.RSAPrivateKey | None = None  # sign with another key (tests)
    jwks_in_smart_configuration: bool = True  # False: only via OIDC discovery
    latency: float = 0.0  # seconds added to every request (a remote EHR, for benchmarks)
    issue_refresh_tokens: bool = True  # False: access tokens only (SMART makes them optional)
    token_answer: tuple[int, str] | None = None  # the token endpoint's raw answer (failures)
    transaction_answer: tuple[int, dict[str, Any]] | None = None  # a refused write (no backend)

    @property
    def fhir_base(self) -> str:
        return f"{self.base}/fhir"

    def new_launch(self, **context: Any) -> str:
        launch = secrets.token_urlsafe(12)
        self.launches[launch] = context
        return launch


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def create_auth_server(state: AuthServerState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):  # type: ignore[no-untyped-def]
        state.requests.append((request.method, request.url.path))
        if state.latency:
            await asyncio.sleep(state.latency)
        return await call_next(request)

    @app.get("/fhir/.well-known/smart-configuration")
    async def smart_configuration() -> Response:
        if not state.well_known:
            return JSONResponse({"error": "not found"}, status_code=404)
        jwks = {"jwks_uri": f"{state.base}/jwks"} if state.jwks_in_smart_configuration else {}
        return JSONResponse(
            {
                "issuer": state.base,
                **jwks,
                "authorization_endpoint": f"{state.base}/authorize",
                "token_endpoint": f"{state.base}/token",
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "scopes_supported": [
                    "openid",
                    "fhirUser",
                    "launch",
                    "launch/patient",
                    "offline_access",
                    "online_access",
                    "patient/*.cruds",
                ],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": state.code_challenge_methods,
                "capabilities": state.capabilities,
            }
        )

    @app.get("/jwks")
    async def jwks() -> Response:
        return JSONResponse(
            {"keys": [public_jwk(signing_key(), state.jwks_kid)]},
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/.well-known/openid-configuration")
    async def openid_configuration() -> Response:
        return JSONResponse(
            {
                "issuer": state.base,
                "jwks_uri": f"{state.base}/jwks",
                "authorization_endpoint": f"{state.base}/authorize",
                "token_endpoint": f"{state.base}/token",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return JSONResponse(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "rest": [
                    {
                        "mode": "server",
                        "security": {
                            "extension": [
                                {
                                    "url": "http://fhir-registry.smarthealthit.org/"
                                    "StructureDefinition/oauth-uris",
                                    "extension": [
                                        {"url": "authorize", "valueUri": f"{state.base}/authorize"},
                                        {"url": "token", "valueUri": f"{state.base}/token"},
                                    ],
                                }
                            ]
                        },
                    }
                ],
            }
        )

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        p = dict(request.query_params)
        state.authorize_params.append(p)
        client = state.clients.get(p.get("client_id", ""))
        if client is None or p.get("redirect_uri") != client.redirect_uri:
            # Never redirect to an unverified redirect_uri (RFC 6749 §4.1.2.1).
            return JSONResponse({"error": "invalid_client"}, status_code=400)

        def fail(error: str, description: str) -> Response:
            query = urlencode(
                {"error": error, "error_description": description, "state": p.get("state", "")}
            )
            return RedirectResponse(f"{client.redirect_uri}?{query}", status_code=302)

        scopes = p.get("scope", "").split()
        if p.get("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code")
        if not p.get("state"):
            return fail("invalid_request", "state is required")
        if p.get("aud") != state.fhir_base:
            return fail("invalid_request", "aud must be the FHIR base URL")
        if p.get("code_challenge_method") != "S256" or not p.get("code_challenge"):
            return fail("invalid_request", "PKCE S256 is required")
        context: dict[str, Any] = {}
        if "launch" in p:
            if "launch" not in scopes:
                return fail("invalid_scope", "an EHR launch needs the launch scope")
            if p["launch"] not in state.launches:
                return fail("invalid_request", "unknown launch")
            context = dict(state.launches[p["launch"]])
        elif "launch/patient" in scopes and state.standalone_patient:
            context = {"patient": state.standalone_patient}
            if state.standalone_user:
                context["fhirUser"] = state.standalone_user
        code = secrets.token_urlsafe(24)
        granted = state.grant_scope or " ".join(
            s for s in scopes if s not in ("launch", "launch/patient", "launch/encounter")
        )
        state.codes[code] = {
            "client_id": client.client_id,
            "redirect_uri": p["redirect_uri"],
            "challenge": p["code_challenge"],
            "scope": granted,
            "context": context,
            "nonce": p.get("nonce"),
            "expires": time.time() + 60,
        }
        query = urlencode({"code": code, "state": p["state"]})
        return RedirectResponse(f"{client.redirect_uri}?{query}", status_code=302)

    seen_jti: set[str] = set()

    def _asserted_client(form: dict[str, str]) -> Client | None:
        """private_key_jwt: iss = sub = client_id, aud = token URL, exp ≤ 5 min, fresh jti."""
        if form.get("client_assertion_type") != JWT_BEARER or "client_id" in form:
            return None
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            client = state.clients.get(str(unverified.get("iss")))
            if client is None or client.public_key is None or header.get("kid") != client.kid:
                return None
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS384", "ES384"],
                audience=f"{state.base}/token",
                issuer=client.client_id,
                options={"require": ["exp", "jti", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        if claims["sub"] != client.client_id or claims["exp"] > time.time() + 300:
            return None
        if claims["jti"] in seen_jti:
            return None
        seen_jti.add(claims["jti"])
        return client

    def _client_of(request: Request, form: dict[str, str]) -> Client | None:
        if "client_assertion" in form:
            return _asserted_client(form)
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            client = state.clients.get(client_id)
            if client is None or client.secret is None or client.secret != secret:
                return None
            if "client_id" in form and form["client_id"] != client_id:
                return None
            return client
        client = state.clients.get(form.get("client_id", ""))
        public = client is not None and client.secret is None and client.public_key is None
        return client if public else None

    def _issue(
        client: Client, scope: str, context: dict[str, Any], nonce: str | None = None
    ) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        state.access_tokens[access] = {
            "scope": scope,
            "context": context,
            "expires": time.time() + state.expires_in,
        }
        state.refresh_tokens[refresh] = {
            "client_id": client.client_id,
            "scope": scope,
            "context": context,
        }
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": state.expires_in,
            "scope": scope,
            **({"refresh_token": refresh} if state.issue_refresh_tokens else {}),
            "need_patient_banner": context.get("need_patient_banner", True),
            "smart_style_url": f"{state.base}/smart-style.json",
        }
        for key in ("patient", "encounter", "fhirContext"):
            if key in context:
                body[key] = context[key]
        if "openid" in scope.split() and context.get("fhirUser"):
            now = int(time.time())
            claims: dict[str, Any] = {
                "iss": state.base,
                "aud": client.client_id,
                "sub": "u1",
                "fhirUser": context["fhirUser"],
                "iat": now,
                "exp": now + 300,
            }
            if nonce is not None:
                claims["nonce"] = nonce
            claims.update(state.id_token_claims)
            body["id_token"] = jwt.encode(
                {k: v for k, v in claims.items() if v is not None},
                state.id_token_signer or signing_key(),
                algorithm="RS256",
                headers={"kid": state.id_token_kid},
            )
        return body

    @app.post("/token")
    async def token(request: Request) -> Response:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl((await request.body()).decode()))
        state.token_requests.append(
            {"form": form, "basic": request.headers.get("authorization", "").startswith("Basic")}
        )
        if state.token_answer is not None:
            status, text = state.token_answer
            return Response(text, status_code=status, media_type="application/json")
        client = _client_of(request, form)
        if client is None:
            return _oauth_error("invalid_client", "client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            record = state.codes.pop(form.get("code", ""), None)  # single use
            if record is None or record["expires"] < time.time():
                return _oauth_error("invalid_grant", "unknown or used code")
            if record["client_id"] != client.client_id:
                return _oauth_error("invalid_grant", "code issued to another client")
            if form.get("redirect_uri") != record["redirect_uri"]:
                return _oauth_error("invalid_grant", "redirect_uri differs")
            verifier = form.get("code_verifier")
            if not verifier or _s256(verifier) != record["challenge"]:
                return _oauth_error("invalid_grant", "PKCE verification failed")
            body = _issue(client, record["scope"], record["context"], record.get("nonce"))
        elif grant == "refresh_token":
            record = state.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotation
            if record is None or record["client_id"] != client.client_id:
                return _oauth_error("invalid_grant", "unknown refresh token")
            body = _issue(client, record["scope"], record["context"])
        else:
            return _oauth_error("unsupported_grant_type", str(grant))
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @app.api_route("/fhir", methods=["GET", "POST"])  # transaction / batch; paging links
    async def fhir_base(request: Request) -> Response:
        return await fhir("", request)

    @app.api_route("/fhir/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def fhir(path: str, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = state.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None or token["expires"] < time.time():
            return JSONResponse(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "login", "diagnostics": "invalid token"}
                    ],
                },
                status_code=401,
            )
        if state.backend is None:  # a tiny in-memory FHIR server: reads by id, empty searches
            if request.method == "POST" and path == "":
                bundle = await request.json()
                if bundle.get("type") == "batch":  # searches and reads, answered from memory
                    return JSONResponse(_memory_batch(state, bundle))
                # transaction: recorded, all created (or the test's refusal)
                if state.transaction_answer is not None:
                    status, outcome = state.transaction_answer
                    return JSONResponse(outcome, status_code=status)
                state.transactions.append(bundle)
                return JSONResponse(
                    {
                        "resourceType": "Bundle",
                        "type": "transaction-response",
                        "entry": [
                            {"response": {"status": "201 Created", "location":
                                          f"{e['resource']['resourceType']}/{i}"}}
                            for i, e in enumerate(bundle.get("entry") or [])
                        ],
                    }
                )
            if request.method == "GET" and path in state.resources:
                return JSONResponse(state.resources[path])
            if request.method == "GET" and "/" not in path:
                return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": []})
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("accept", "content-type", "if-match", "if-none-exist", "prefer")
        }
        async with httpx.AsyncClient(timeout=60) as http:
            upstream = await http.request(
                request.method,
                f"{state.backend}/{path}" if path else state.backend,
                params=list(request.query_params.multi_items()),
                content=await request.body(),
                headers=headers,
            )
        body = upstream.content.replace(state.backend.encode(), state.fhir_base.encode())
        keep = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "etag", "location", "last-modified")
        }
        return Response(body, status_code=upstream.status_code, headers=keep)

    return app


def _memory_batch(state: AuthServerState, bundle: dict[str, Any]) -> dict[str, Any]:
    """A batch of GETs over ``state.resources``: ``Type/id`` reads; ``Patient?_id=a,b`` and
    ``Type?subject|patient=Patient/a,…`` searches (other parameters ignored)."""
    from urllib.parse import parse_qsl

    answers = []
    for entry in bundle.get("entry") or []:
        url = str((entry.get("request") or {}).get("url", ""))
        kind, _, query = url.partition("?")
        if not query:
            found = state.resources.get(kind)
            answers.append(
                {"resource": found, "response": {"status": "200 OK"}}
                if found
                else {"response": {"status": "404 Not Found"}}
            )
            continue
        params = dict(parse_qsl(query))
        wanted = set(params.get("_id", "").split(",")) if "_id" in params else None
        refs = set((params.get("subject") or params.get("patient") or "").split(","))
        matches = []
        for key, resource in state.resources.items():
            if key.split("/", 1)[0] != kind:
                continue
            if wanted is not None:
                hit = resource.get("id") in wanted
            else:
                hit = any(
                    (resource.get(field) or {}).get("reference") in refs
                    for field in ("subject", "patient", "for")
                )
            if hit:
                matches.append({"resource": resource, "search": {"mode": "match"}})
        searchset = {"resourceType": "Bundle", "type": "searchset", "entry": matches}
        answers.append({"resource": searchset, "response": {"status": "200 OK"}})
    return {"resourceType": "Bundle", "type": "batch-response", "entry": answers}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """``uvicorn`` serving ``app`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
