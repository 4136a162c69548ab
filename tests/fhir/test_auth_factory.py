"""The auth factory: key files (PEM, JWKS), alg per key type and curve, kid, scopes, options."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bhi_fhir.fhir import BackendServicesAuth, BearerAuth, FhirClient
from bhi_fhir.fhir.auth import alg_for_key, negotiate_scope
from bhi_fhir.fhir.auth_factory import (
    AuthSettings,
    cli_auth,
    jwk_thumbprint,
    load_signing_key,
)
from tests.fhir.conftest import BASE

TOKEN_URL = "http://auth.test/token"

KEYS = {
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
}


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _private_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, **extra: str) -> dict:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(key, as_dict=True), **extra}


# SMART App Launch 2.2 backend-services.md: clients SHALL support RS384 and ES384;
# RFC 7518 §3.4: ES256 is ECDSA on P-256, ES384 on P-384 — the curve fixes the algorithm.
@pytest.mark.parametrize(
    ("kind", "alg"),
    [
        pytest.param("rsa", "RS384", id="RSA-RS384 (SMART 2.2 backend-services)"),
        pytest.param("p384", "ES384", id="P-384-ES384 (RFC 7518 3.4)"),
        pytest.param("p256", "ES256", id="P-256-ES256 (RFC 7518 3.4)"),
    ],
)
@pytest.mark.parametrize("form", ["pem", "jwks"])
def test_alg_follows_key_type_and_curve(tmp_path: Path, kind: str, alg: str, form: str) -> None:
    key = KEYS[kind]()
    path = tmp_path / "key"
    if form == "pem":
        path.write_bytes(_pem(key))
    else:
        path.write_text(json.dumps({"keys": [_private_jwk(key, kid="k1")]}))
    auth = AuthSettings(client_id="c", private_key=path).build(BASE)
    assert isinstance(auth, BackendServicesAuth)
    assertion = auth.client_assertion(TOKEN_URL)
    assert jwt.get_unverified_header(assertion)["alg"] == alg
    jwt.decode(assertion, key.public_key(), algorithms=[alg], audience=TOKEN_URL)


def test_other_curves_are_refused() -> None:
    with pytest.raises(ValueError, match="secp521r1 is not supported"):
        alg_for_key(KEYS["p521"]())


@pytest.mark.parametrize(
    ("kind", "asked"),
    [
        pytest.param("p256", "ES384", id="P-256-asked-ES384"),
        pytest.param("p384", "ES256", id="P-384-asked-ES256"),
        pytest.param("rsa", "ES384", id="RSA-asked-ES384"),
    ],
)
def test_an_alg_the_key_cannot_sign_is_refused(kind: str, asked: str) -> None:
    with pytest.raises(ValueError, match="needs another key"):
        BackendServicesAuth(BASE, client_id="c", private_key=KEYS[kind](), kid="k", alg=asked)


def test_kid_from_jwk_else_option_else_thumbprint() -> None:
    key = KEYS["p384"]()
    jwks = json.dumps({"keys": [_private_jwk(key, kid="from-jwk")]}).encode()
    assert load_signing_key(jwks, kid="ignored").kid == "from-jwk"
    assert load_signing_key(_pem(key), kid="given").kid == "given"
    assert load_signing_key(_pem(key)).kid == jwk_thumbprint(key)


def test_thumbprint_is_rfc7638() -> None:
    """RFC 7638 §3.1 example: the RSA key whose thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWX…"""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public = RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": "AQAB"})
    assert isinstance(public, rsa.RSAPublicKey)
    assert jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"not a key", "not a usable PEM", id="garbage"),
        pytest.param(b"{not json", "neither PEM nor JSON", id="bad-json"),
        pytest.param(b'{"keys": []}', "holds 0 private keys", id="no-private-key"),
    ],
)
def test_unusable_key_files(content: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_signing_key(content)


def test_jwks_with_two_private_keys_is_ambiguous() -> None:
    keys = [_private_jwk(KEYS["p256"](), kid="a"), _private_jwk(KEYS["p384"](), kid="b")]
    with pytest.raises(ValueError, match="holds 2 private keys"):
        load_signing_key(json.dumps({"keys": keys}).encode())


def test_jwk_alg_must_match_the_key() -> None:
    jwk = _private_jwk(KEYS["p256"](), alg="ES384")
    with pytest.raises(ValueError, match="says alg ES384"):
        load_signing_key(json.dumps(jwk).encode())


# SMART App Launch 2.2 scopes-and-launch-context.md: v2 scopes .rs/.cu; v1 .read/.write map to
# them; the server lists what it supports in scopes_supported (conformance.md).
@pytest.mark.parametrize(
    ("supported", "write", "scope"),
    [
        pytest.param(None, True, "system/*.rs system/*.cu", id="no-list-v2-default"),
        pytest.param(None, False, "system/*.rs", id="read-only"),
        pytest.param(["system/*.rs", "system/*.cu"], True, "system/*.rs system/*.cu", id="v2"),
        pytest.param(["system/*.cruds"], True, "system/*.cruds", id="v2-superset"),
        pytest.param(
            ["system/*.read", "system/*.write"], True, "system/*.read system/*.write", id="v1"
        ),
        pytest.param(["system/*.*"], True, "system/*.*", id="v1-superset"),
        pytest.param(["launch", "openid"], True, "system/*.rs system/*.cu", id="none-listed"),
    ],
)
def test_scope_negotiation(supported: list[str] | None, write: bool, scope: str) -> None:
    assert negotiate_scope(supported, write) == scope


async def test_negotiated_scope_and_jku_reach_the_token_request(tmp_path: Path) -> None:
    key = KEYS["p384"]()
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(key))
    auth = cli_auth(BASE, client_id="bhi", private_key=path, jwks_url="https://app.test/jwks")
    router = respx.MockRouter(assert_all_called=False)
    router.get(f"{BASE}/.well-known/smart-configuration").mock(
        return_value=httpx.Response(
            200,
            json={
                "token_endpoint": TOKEN_URL,
                "scopes_supported": ["system/*.read", "system/*.write"],
            },
        )
    )
    token = router.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            200, json={"access_token": "t", "expires_in": 300, "scope": "system/*.read"}
        )
    )
    router.get(f"{BASE}/Patient/p").mock(
        return_value=httpx.Response(200, json={"resourceType": "Patient"})
    )
    async with FhirClient(
        BASE, auth=auth, transport=httpx.MockTransport(router.async_handler)
    ) as f:
        await f.read("Patient", "p")
    form = parse_qs(token.calls.last.request.content.decode())
    assert form["scope"] == ["system/*.read system/*.write"]
    assert jwt.get_unverified_header(form["client_assertion"][0])["jku"] == "https://app.test/jwks"
    assert isinstance(auth, BackendServicesAuth) and auth.granted_scope == "system/*.read"


def test_bearer_token_and_none() -> None:
    assert isinstance(AuthSettings(bearer_token="x").build(BASE), BearerAuth)
    assert AuthSettings().build(BASE) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(
            AuthSettings(bearer_token="x", client_id="c"), "not both", id="bearer-and-client"
        ),
        pytest.param(
            AuthSettings(client_id="c"), "both a client id and a private key", id="no-key"
        ),
        pytest.param(AuthSettings(scope="system/*.rs"), "need a client id", id="scope-alone"),
        pytest.param(
            AuthSettings(client_id="c", private_key=Path("/nonexistent/key.pem")),
            "cannot read the private key",
            id="missing-file",
        ),
    ],
)
def test_bad_combinations(settings: AuthSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.build(BASE)


def test_cli_auth_turns_problems_into_usage_errors() -> None:
    with pytest.raises(typer.BadParameter, match="not both"):
        cli_auth(BASE, bearer_token="x", client_id="c")


def test_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bhi_fhir.sync.webhook import NotifySettings

    env = {
        "BHI_NOTIFY_CLIENT_ID": "bhi",
        "BHI_NOTIFY_PRIVATE_KEY": str(tmp_path / "k.pem"),
        "BHI_NOTIFY_JWKS_URL": "https://app.test/jwks",
        "BHI_NOTIFY_SCOPE": " ",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = NotifySettings().auth
    assert settings == AuthSettings(
        client_id="bhi", private_key=tmp_path / "k.pem", jwks_url="https://app.test/jwks"
    )
    assert settings.configured


def test_notification_receiver_authenticates_every_run_with_one_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bhi_fhir.sync.webhook import NotifySettings

    path = tmp_path / "key.pem"
    path.write_bytes(_pem(KEYS["p256"]()))
    monkeypatch.setenv("BHI_NOTIFY_SERVER", BASE)
    monkeypatch.setenv("BHI_NOTIFY_CLIENT_ID", "bhi-notify")
    monkeypatch.setenv("BHI_NOTIFY_PRIVATE_KEY", str(path))
    settings = NotifySettings.from_env()
    first, second = settings.config(None).auth, settings.config("Patient/1").auth
    assert isinstance(first, BackendServicesAuth)
    assert first is second  # the token is reused across runs until it expires


@pytest.mark.parametrize("command", ["sync", "bill", "doctor", "subscribe"])
def test_every_server_command_takes_the_same_auth_options(command: str) -> None:
    from typer.main import get_command

    from bhi_fhir.cli import _register, app

    _register()
    click_command = get_command(app).commands[command]  # type: ignore[attr-defined]
    options = {opt for param in click_command.params for opt in param.opts}
    assert {
        "--bearer-token",
        "--client-id",
        "--private-key",
        "--jwks-url",
        "--scope",
        "--token-url",
        "--kid",
    } <= options


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["sync", "--server", BASE], id="sync"),
        pytest.param(["bill", "--month", "2020-01", "--server", BASE, "--dry-run"], id="bill"),
        pytest.param(["subscribe", "--server", BASE, "--endpoint", "http://a.test/n"], id="sub"),
    ],
)
def test_a_client_id_without_a_key_is_a_usage_error(args: list[str], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bhi_fhir.cli import _register, app

    _register()
    env = {"BHI_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    result = CliRunner().invoke(app, [*args, "--client-id", "bhi"], env=env)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())  # unwrap Rich's error box
    assert "both a client id and a private key" in text
