"""The app's public JWKS (SMART App Launch 2.2 client-confidential-asymmetric.md: the client
registers a JWKS URL; RS384 and ES384; ``kid`` on every key; the key set's server sends
Cache-Control): what the EHR fetches verifies the app's token-request assertion."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from smart_app.config import EhrRegistration
from smart_app.main import create_app
from smart_app.smart import SmartPrivateKeyJWT
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, CLIENT_ID, make_settings


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), "RS384", id="rsa-rs384"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", id="ec-es384"),
    ],
)
def test_the_served_key_verifies_the_apps_assertion(
    ehr: AuthServerState, tmp_path: Path, make_key: object, alg: str
) -> None:
    key = make_key()  # type: ignore[operator]
    (tmp_path / "key.pem").write_bytes(_pem(key))
    registration = EhrRegistration(
        iss=ehr.fhir_base,
        client_id=CLIENT_ID,
        client_auth="private_key_jwt",
        private_key_path=tmp_path / "key.pem",
        kid="app-key-1",
    )
    settings = make_settings(ehr, registrations=[registration])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        answer = client.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert "max-age" in answer.headers["cache-control"]
    (jwk,) = answer.json()["keys"]
    assert jwk["kid"] == "app-key-1" and jwk["alg"] == alg and jwk["use"] == "sig"
    assert "d" not in jwk  # never the private part

    class _Auth:
        client_id = CLIENT_ID
        client_secret = _pem(key).decode()

    signer = SmartPrivateKeyJWT(_Auth.client_secret, "app-key-1")
    assertion = signer.sign(_Auth(), f"{ehr.base}/token")
    token = assertion.decode() if isinstance(assertion, bytes) else str(assertion)
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(
        token, jwt.PyJWK.from_dict(jwk).key, algorithms=[alg], audience=f"{ehr.base}/token"
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID


def test_no_key_based_registration_serves_an_empty_set(app_client: TestClient) -> None:
    answer = app_client.get("/.well-known/jwks.json")
    assert answer.status_code == 200 and answer.json() == {"keys": []}
