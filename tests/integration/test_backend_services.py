"""SMART Backend Services against a real authorization server and the protected local HAPI.

The servers: Keycloak (``tools/keycloak/start``: client_credentials + private_key_jwt clients
``bhi-sync-es384`` and ``bhi-sync-rs384``, their TEST keys in ``tools/keycloak/run/keys``) and the
protected mode of the local HAPI (``tools/hapi/gateway/start``: the SMART gateway in front of the
same HAPI the rest of the integration tier uses unprotected).

* ``BHI_SMART_FHIR_BASE_URL``: the protected base URL (default ``http://127.0.0.1:8181/fhir``);
* ``BHI_KEYCLOAK_KEYS``: the test keys' directory (default ``tools/keycloak/run/keys``);
* ``BHI_REQUIRE_KEYCLOAK=1`` (CI): a missing server is a failure, never a skip.

``doctor``, ``sync`` and ``bill`` run through the command line with ``--client-id`` and
``--private-key`` for both key types; what they write is read back from the unprotected HAPI.
The gateway's ``/_gateway/stats`` counts requests and distinct access tokens per client.

``bhi-jwks-url`` is registered by JWKS URL: the tests make a key, serve its public JWKS on a free
127.0.0.1 port and point the client there (Keycloak's admin API, as ``bhi-test-admin``), so a
token proves Keycloak fetched the key from that URL. ``subscribe`` and the notification
receiver (the app, started with uvicorn) read and write through the protected server too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.exit_codes import EXIT_CONFIG, EXIT_NOPERM
from bhi_fhir.fhir.auth_factory import AuthSettings, jwk_thumbprint
from bhi_fhir.paths import examples_dir
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.notify_receiver import case_criteria, running_receiver, unsubscribe
from tests.integration.test_billing_hapi import MONTH, _cleanup, _seed
from tests.integration.test_sync import (
    SEEDED_TYPES,
    WRITTEN_TYPES,
    identifiers_on_server,
    seed_clinic,
)
from tests.sync.clinic import delete_tagged, seed, team

pytestmark = pytest.mark.integration

_register()

ROOT = Path(__file__).resolve().parents[2]
TODAY = "2026-11-26"
NOTIFY_SECRET = "test-notify-secret"
CLIENTS = {  # key type → (client id, key file): the realm in tools/keycloak/bhi-realm.json
    "es384": ("bhi-sync-es384", "es384.pem"),
    "rs384": ("bhi-sync-rs384", "rs384.pem"),
}


def _keys_dir() -> Path:
    return Path(os.environ.get("BHI_KEYCLOAK_KEYS", ROOT / "tools/keycloak/run/keys"))


@pytest.fixture(scope="session")
def smart_base() -> str:
    """The protected base URL, once its SMART configuration and the test keys are there."""
    base = os.environ.get("BHI_SMART_FHIR_BASE_URL", "http://127.0.0.1:8181/fhir").rstrip("/")
    reason = None
    try:
        config = httpx.get(f"{base}/.well-known/smart-configuration", timeout=30)
        if config.status_code != 200 or "token_endpoint" not in config.json():
            reason = f"{base}/.well-known/smart-configuration answered {config.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        reason = f"no protected FHIR server at {base} ({type(exc).__name__})"
    if reason is None and not (_keys_dir() / "es384.pem").exists():
        reason = f"no test keys in {_keys_dir()}"
    if reason:
        if os.environ.get("BHI_REQUIRE_KEYCLOAK") == "1":
            pytest.fail(f"BHI_REQUIRE_KEYCLOAK=1 but {reason}", pytrace=False)
        pytest.skip(f"backend services skipped: {reason}; start tools/keycloak/start and "
                    "tools/hapi/gateway/start")
    return base


@pytest.fixture(scope="session")
def token_url(smart_base: str) -> str:
    return str(httpx.get(f"{smart_base}/.well-known/smart-configuration").json()["token_endpoint"])


def gateway_stats(base: str, client: str) -> dict[str, int]:
    origin = base.rsplit("/fhir", 1)[0]
    stats = httpx.get(f"{origin}/_gateway/stats", timeout=30).json()
    return {"requests": 0, "tokens": 0} | stats["clients"].get(client, {})


def refusals(base: str) -> dict[str, int]:
    origin = base.rsplit("/fhir", 1)[0]
    return dict(httpx.get(f"{origin}/_gateway/stats", timeout=30).json()["refused"])


def backend_args(kind: str) -> list[str]:
    client_id, key = CLIENTS[kind]
    return ["--client-id", client_id, "--private-key", str(_keys_dir() / key)]


def access_token(token_url: str, client_id: str, key_file: str, scope: str) -> str:
    """A token fetched by hand: the client's own assertion, one POST."""
    auth: Any = AuthSettings(client_id=client_id, private_key=_keys_dir() / key_file,
                             token_url=token_url).build("http://unused.invalid/fhir")
    response = httpx.post(token_url, data={
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": auth.client_assertion(token_url),
    }, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# --- doctor, sync and bill with both key types -------------------------------------------------

@pytest.mark.parametrize("kind", ["es384", "rs384"], ids=["EC-P384-ES384", "RSA-RS384"])
def test_doctor_with_backend_services(
    smart_base: str, plan_resources: list[str], kind: str
) -> None:
    client_id = CLIENTS[kind][0]
    before = gateway_stats(smart_base, client_id)
    result = CliRunner().invoke(
        app, ["doctor", "--server", smart_base, "--format", "json", *backend_args(kind)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert report["plan"]["missing"] == []
    smart = {c["name"]: c for c in report["checks"]}["SMART backend services"]
    assert smart["status"] == "ok", smart
    after = gateway_stats(smart_base, client_id)
    assert after["requests"] > before["requests"]  # it read through the protected server
    assert after["tokens"] == before["tokens"] + 1  # with one token


@pytest.mark.parametrize("kind", ["es384", "rs384"], ids=["EC-P384-ES384", "RSA-RS384"])
def test_sync_with_backend_services(
    fhir_base_url: str, smart_base: str, run_tag: RunTag, case_id: str, tmp_path: Path,
    plan_resources: list[str], kind: str,
) -> None:
    responses = seed_clinic(fhir_base_url, run_tag, case_id, 6)
    seeded = identifiers_on_server(fhir_base_url, case_id)
    client_id = CLIENTS[kind][0]
    before = gateway_stats(smart_base, client_id)
    try:
        result = CliRunner().invoke(app, [
            "sync", "--server", smart_base, "--today", TODAY, "--format", "json",
            "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
            "--where", f"_tag={CASE_SYSTEM}|{case_id}",
            "--tag", f"{TAG_SYSTEM}|{run_tag.code}", "--tag", f"{CASE_SYSTEM}|{case_id}",
            *backend_args(kind),
        ])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["status"] == "ok"
        assert report["responses"] == responses
        assert report["written"]["created"] > 0
        # what it says it wrote is on the server (read back unprotected), each once
        written = identifiers_on_server(fhir_base_url, case_id) - seeded
        assert all(n == 1 for n in written.values()), written
        workflow = sum(n for k, n in written.items() if not k.startswith("Provenance|"))
        assert workflow == report["written"]["created"]
        after = gateway_stats(smart_base, client_id)
        # one access token for the whole run: reused, not fetched per request
        assert after["tokens"] == before["tokens"] + 1
        assert after["requests"] - before["requests"] >= 3
    finally:
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                      ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


@pytest.mark.parametrize("kind", ["es384", "rs384"], ids=["EC-P384-ES384", "RSA-RS384"])
def test_bill_with_backend_services(
    fhir_base_url: str, smart_base: str, run_tag: RunTag, case_id: str, kind: str
) -> None:
    ids = asyncio.run(_seed(fhir_base_url, run_tag, case_id))
    patient = ids["patient"]
    identifier = f"billing-cocm-{patient.split('/')[1]}-{MONTH}"
    args = [
        "bill", "--month", MONTH, "--server", smart_base, "--format", "json",
        "--patient", patient, "--billing-practitioner", ids["pcp"], "--timezone", "UTC",
        "--care-manager", ids["bhcm"], *backend_args(kind),
    ]  # fmt: skip
    http = httpx.Client(headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"})
    try:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)["patients"]
        assert row["result"] == "created"
        encounters = http.get(f"{fhir_base_url}/Encounter",
                              params={"identifier": f"{BHI_IDENTIFIER}|{identifier}"})
        found = [e["resource"] for e in encounters.json().get("entry", [])]
        assert len(found) == 1 and found[0]["length"]["value"] == row["minutes"]
    finally:
        _cleanup(http, fhir_base_url, identifier)
        http.close()


# --- the server refuses what it must -----------------------------------------------------------

def _forged_token(token_url: str) -> str:
    """Right issuer and audience, signed with a key the issuer does not publish."""
    issuer = token_url.split("/protocol/")[0]
    now = int(time.time())
    key = ec.generate_private_key(ec.SECP384R1())
    claims = {"iss": issuer, "aud": "bhi-fhir-server", "exp": now + 300, "iat": now,
              "azp": "bhi-sync-es384", "scope": "system/*.rs system/*.cu"}
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "not-published"})


def _other_issuer_token(token_url: str) -> str:
    """A genuine Keycloak token, from another realm (another issuer)."""
    other = token_url.replace("/realms/bhi/", "/realms/bhi-other/")
    response = httpx.post(other, data={
        "grant_type": "client_credentials", "scope": "system/*.rs",
        "client_id": "bhi-intruder", "client_secret": "test-only-not-a-secret",
    }, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _expired_token(token_url: str) -> str:
    """A genuine token of a client whose tokens live 6 s, used after 7 s."""
    token = access_token(token_url, "bhi-short-es384", "es384.pem", "system/*.rs")
    time.sleep(7)
    return token


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda url: None, "no bearer token"),
        (lambda url: "not-a-jwt", "not a JWT"),
        (_expired_token, "expired"),
        (_other_issuer_token, "wrong issuer"),
        (_forged_token, "signed with a key the issuer does not publish"),
    ],
    ids=["no-token", "not-a-jwt", "expired", "wrong-issuer", "unknown-signing-key"],
)
def test_the_protected_server_refuses_an_invalid_token(
    smart_base: str, token_url: str, make_token: Any, reason: str
) -> None:
    token = make_token(token_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{smart_base}/Patient", params={"_count": "1"}, headers=headers)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"') and reason in challenge
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_protected_server_checks_scopes_per_type_and_interaction(
    smart_base: str, token_url: str
) -> None:
    # bhi-reader-es384 may have system/*.rs only (bhi-realm.json; Keycloak refuses a request
    # for more with invalid_scope rather than granting less)
    token = access_token(token_url, "bhi-reader-es384", "es384.pem", "system/*.rs")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    assert jwt.decode(token, options={"verify_signature": False})["scope"] == "system/*.rs"
    assert httpx.get(f"{smart_base}/Patient", params={"_count": "1"},
                     headers=headers).status_code == 200
    assert httpx.get(f"{smart_base}/metadata").status_code == 200  # open
    create = httpx.post(f"{smart_base}/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert create.status_code == 403
    assert 'error="insufficient_scope"' in create.headers["WWW-Authenticate"]
    # inside a transaction, each entry's interaction is checked
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Patient?_count=1"}},
        {"resource": {"resourceType": "Observation"},
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    assert httpx.post(smart_base, json=bundle, headers=headers).status_code == 403


# --- a key the authorization server does not know ----------------------------------------------

def test_an_unregistered_key_is_a_clean_authorization_error(
    fhir_base_url: str, smart_base: str, run_tag: RunTag, case_id: str, tmp_path: Path,
    plan_resources: list[str], caplog: pytest.LogCaptureFixture,
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, 2)
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    caplog.set_level(logging.DEBUG)
    try:
        for command in (
            ["sync", "--today", TODAY, "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
             "--where", f"_tag={CASE_SYSTEM}|{case_id}"],
            ["doctor"],
        ):
            result = CliRunner().invoke(app, [
                *command, "--server", smart_base,
                "--client-id", "bhi-sync-es384", "--private-key", str(stranger),
            ])
            assert result.exit_code == EXIT_NOPERM, result.output
            logged = result.output + "\n".join(r.getMessage() for r in caplog.records)
            # nothing of the patients (ids carry the case prefix), no assertion or key material
            assert f"c{case_id[:8]}-" not in logged
            assert "eyJ" not in logged and "PRIVATE KEY" not in logged
            caplog.clear()
    finally:
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}", tuple(reversed(SEEDED_TYPES)))


# --- token reuse until near expiry -------------------------------------------------------------

async def test_the_token_is_reused_until_near_expiry(smart_base: str) -> None:
    """bhi-short-es384's tokens live 6 s: the client reuses one until 3 s before its expiry
    (half the lifetime, at most 30 s, is the margin), then asks for a new one — never a 401."""
    auth: Any = AuthSettings(
        client_id="bhi-short-es384", private_key=_keys_dir() / "es384.pem", scope="system/*.rs"
    ).build(smart_base, write=False)
    refused_before = refusals(smart_base).get("expired", 0)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        started = time.monotonic()
        statuses = [(await http.get(f"{smart_base}/Patient", params={"_count": "1"})).status_code
                    for _ in range(3)]
        quick = time.monotonic() - started < 2.5
        assert statuses == [200, 200, 200]
        if quick:  # all three inside the token's reuse window
            assert auth.token_requests == 1
        first = auth.token_requests
        await asyncio.sleep(3.5)
        response = await http.get(f"{smart_base}/Patient", params={"_count": "1"})
        assert response.status_code == 200
        assert auth.token_requests == first + 1  # renewed before expiry
    assert refusals(smart_base).get("expired", 0) == refused_before  # never sent an expired one


def test_the_smart_configuration_advertises_backend_services(smart_base: str) -> None:
    config = httpx.get(f"{smart_base}/.well-known/smart-configuration").json()
    assert "client_credentials" in config["grant_types_supported"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert {"ES384", "RS384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert config["token_endpoint"].endswith("/realms/bhi/protocol/openid-connect/token")


# --- a client registered by JWKS URL -----------------------------------------------------------

class _JwksServer:
    """The public JWKS of a key made for this session, served over HTTP on a free
    127.0.0.1 port (Keycloak fetches it from its JVM); counts the fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.fetches = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _point_client_at(token_url: str, client_id: str, jwks_url: str) -> None:
    """Set the client's registered JWKS URL (Keycloak's admin API, as bhi-test-admin: the
    test's server has a free port, so the realm file cannot name it)."""
    admin = httpx.post(token_url, data={
        "grant_type": "client_credentials", "client_id": "bhi-test-admin",
        "client_secret": "test-only-not-a-secret",
    }, timeout=30)
    assert admin.status_code == 200, admin.text
    clients = token_url.split("/realms/")[0] + "/admin/realms/bhi/clients"
    headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    (found,) = httpx.get(clients, params={"clientId": client_id}, headers=headers,
                         timeout=30).json()
    found["attributes"] |= {"use.jwks.url": "true", "jwks.url": jwks_url}
    updated = httpx.put(f"{clients}/{found['id']}", json=found, headers=headers, timeout=30)
    assert updated.status_code == 204, updated.text


@pytest.fixture(scope="module")
def jwks_url_client(
    token_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], _JwksServer]]:
    """``bhi-jwks-url`` (bhi-realm.json) registered by the URL of a JWKS server this module
    starts, holding a key made here: Keycloak can know the key only by fetching that URL.
    Yields the command-line options and the server."""
    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path_factory.mktemp("jwks-url") / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=jwk_thumbprint(key), alg="ES384", use="sig")
    with _JwksServer({"keys": [jwk]}) as served:
        _point_client_at(token_url, "bhi-jwks-url", served.url)
        yield ["--client-id", "bhi-jwks-url", "--private-key", str(pem),
               "--jwks-url", served.url], served


def test_doctor_with_a_jwks_url_client(
    smart_base: str, plan_resources: list[str], jwks_url_client: tuple[list[str], _JwksServer]
) -> None:
    args, served = jwks_url_client
    before = gateway_stats(smart_base, "bhi-jwks-url")
    result = CliRunner().invoke(app, ["doctor", "--server", smart_base, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    smart = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["SMART backend services"]
    assert smart["status"] == "ok", smart
    assert served.fetches >= 1  # Keycloak fetched the key from the registered URL
    after = gateway_stats(smart_base, "bhi-jwks-url")
    assert after["tokens"] == before["tokens"] + 1 and after["requests"] > before["requests"]


def test_sync_with_a_jwks_url_client(
    fhir_base_url: str, smart_base: str, run_tag: RunTag, case_id: str, tmp_path: Path,
    plan_resources: list[str], jwks_url_client: tuple[list[str], _JwksServer],
) -> None:
    args, _ = jwks_url_client
    responses = seed_clinic(fhir_base_url, run_tag, case_id, 2)
    seeded = identifiers_on_server(fhir_base_url, case_id)
    before = gateway_stats(smart_base, "bhi-jwks-url")
    try:
        result = CliRunner().invoke(app, [
            "sync", "--server", smart_base, "--today", TODAY, "--format", "json",
            "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
            "--where", f"_tag={CASE_SYSTEM}|{case_id}",
            "--tag", f"{TAG_SYSTEM}|{run_tag.code}", "--tag", f"{CASE_SYSTEM}|{case_id}",
            *args,
        ])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["status"] == "ok" and report["responses"] == responses
        written = identifiers_on_server(fhir_base_url, case_id) - seeded
        assert sum(n for k, n in written.items() if not k.startswith("Provenance|")) == (
            report["written"]["created"]) > 0
        assert gateway_stats(smart_base, "bhi-jwks-url")["tokens"] == before["tokens"] + 1
    finally:
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                      ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


# --- subscribe and the notification receiver through the protected server ----------------------

@pytest.fixture
def protected_receiver(
    smart_base: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> Iterator[str]:
    """The app (what ``bhi-fhir serve`` runs) whose notification syncs read and write through
    the protected server as ``bhi-sync-es384``; yields its ``/fhir-notify`` URL."""
    client_id, key = CLIENTS["es384"]
    with running_receiver({
        "BHI_NOTIFY_SERVER": smart_base,
        "BHI_NOTIFY_SECRET": NOTIFY_SECRET,
        "BHI_NOTIFY_CLIENT_ID": client_id,
        "BHI_NOTIFY_PRIVATE_KEY": str(_keys_dir() / key),
        "BHI_NOTIFY_TAGS": f"{TAG_SYSTEM}|{run_tag.code},{CASE_SYSTEM}|{case_id}",
        "BHI_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
    }) as url:
        yield f"{url}/fhir-notify"


def test_subscribe_and_notification_sync_through_the_protected_server(
    fhir_base_url: str, smart_base: str, token_url: str, run_tag: RunTag, case_id: str,
    protected_receiver: str,
) -> None:
    seed(fhir_base_url, team())  # the referral directory's stubs (the EHR has them)
    for kind in (*SEEDED_TYPES, *WRITTEN_TYPES, "Subscription"):
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    client_id = CLIENTS["es384"][0]
    tags = [{"system": TAG_SYSTEM, "code": run_tag.code}, {"system": CASE_SYSTEM, "code": case_id}]
    before = gateway_stats(smart_base, client_id)
    subscribed = CliRunner().invoke(app, [
        "subscribe", "--server", smart_base, "--endpoint", protected_receiver,
        "--secret", NOTIFY_SECRET, "--tag", f"{TAG_SYSTEM}|{run_tag.code}",
        "--tag", f"{CASE_SYSTEM}|{case_id}", *case_criteria(CASE_SYSTEM, case_id),
        *backend_args("es384"),
    ])
    assert subscribed.exit_code == 0, subscribed.output
    sub_id, outcome = subscribed.stdout.split()
    assert outcome == "created"
    assert gateway_stats(smart_base, client_id)["tokens"] == before["tokens"] + 1
    token = access_token(token_url, client_id, CLIENTS["es384"][1], "system/*.cruds")
    auth = {"Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
    patient = f"Patient/c{case_id[:8]}-notify"
    qr = json.loads((examples_dir() / "screening" / "phq9-moderate-item9.json").read_text())
    qr |= {"id": f"c{case_id[:8]}-qr-notify", "subject": {"reference": patient},
           "authored": "2026-11-26", "meta": {"tag": tags}}
    try:
        with httpx.Client(base_url=smart_base, timeout=60, headers=auth) as http:
            # the Subscription was written through the gateway: read back through it
            subscription = http.get(sub_id).json()
            assert subscription["channel"]["endpoint"] == protected_receiver
            for _ in range(40):  # requested → active takes about a second
                if http.get(sub_id).json().get("status") == "active":
                    break
                time.sleep(0.5)
            http.put(patient, json={"resourceType": "Patient", "id": patient.split("/")[1],
                                    "gender": "female", "birthDate": "1980-01-01",
                                    "meta": {"tag": tags}}).raise_for_status()
            synced_before = gateway_stats(smart_base, client_id)
            http.put(f"QuestionnaireResponse/{qr['id']}", json=qr).raise_for_status()
            # HAPI notifies the receiver, whose sync reads and writes through the gateway
            deadline = time.monotonic() + 90
            found: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not found:
                page = http.get("ServiceRequest", params={
                    "subject": patient, "identifier": f"{BHI_IDENTIFIER}|"}).json()
                found = [e["resource"] for e in page.get("entry", [])]
                if not found:
                    time.sleep(1)
            assert found, "no ServiceRequest within 90 s of the notification"
            assert any("crisis" in i["value"] for r in found for i in r.get("identifier", []))
            status = httpx.get(f"{protected_receiver}/status", timeout=10).json()
            assert status["completed"] >= 1 and status["failed"] == 0
            after = gateway_stats(smart_base, client_id)
            # the receiver's token (beside this test's): its sync went through the gateway
            assert after["tokens"] >= synced_before["tokens"] + 1
            assert after["requests"] - synced_before["requests"] >= 3
        # and the gateway refuses the same read without a token
        anonymous = httpx.get(f"{smart_base}/{sub_id}", timeout=30)
        assert anonymous.status_code == 401
        assert httpx.get(f"{smart_base}/ServiceRequest", params={"subject": patient},
                         timeout=30).status_code == 401
    finally:
        unsubscribe(fhir_base_url, sub_id)
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                      ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


# --- scopes the authorization server will not grant --------------------------------------------

@pytest.mark.parametrize(
    "command",
    [
        # the doctor asking for more than bhi-reader-es384 may have, by --scope
        ["doctor", "--scope", "system/*.cruds"],
        # a sync asking for the write scopes it needs (negotiated), which the client may not have
        ["sync", "--today", TODAY, "--where", "_tag=https://bhi-fhir.dev/none|none"],
    ],
    ids=["doctor-scope-option", "sync-negotiated-write-scopes"],
)
def test_a_refused_scope_is_a_configuration_error_saying_what_to_change(
    smart_base: str, tmp_path: Path, command: list[str]
) -> None:
    """Keycloak answers invalid_scope rather than granting less (bhi-realm.json): exit 78, the
    operator told which client asked for which scopes and to use --scope or the registration."""
    args = [*command, "--server", smart_base,
            "--client-id", "bhi-reader-es384", "--private-key", str(_keys_dir() / "es384.pem")]
    if command[0] == "sync":
        args += ["--state-url", f"sqlite:///{tmp_path / 'state.db'}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "invalid_scope" in result.output and "'bhi-reader-es384'" in result.output
    assert "--scope" in result.output
    assert "eyJ" not in result.output and "PRIVATE KEY" not in result.output
