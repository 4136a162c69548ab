"""One JOSE library (PyJWT): the client assertion every confidential client signs, and public
JWKs, with ``alg`` fixed by the key's type and curve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bhi_fhir.fhir.auth import ASSERTION_LIFETIME, PrivateKey, client_assertion, public_jwk

TOKEN_URL = "https://auth.example/token"
MakeKey = Callable[[], PrivateKey]
# RFC 7518 §3.1: RS384 RSASSA-PKCS1-v1_5 SHA-384; §3.4: ES256 on P-256, ES384 on P-384.
RFC7518 = "https://www.rfc-editor.org/rfc/rfc7518#section-3"
KEYS = [
    pytest.param(lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                 "RS384", "RSA", id="rsa-rs384"),  # RFC7518 §3.1
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", "EC",
                 id="p384-es384"),  # RFC7518 §3.4
    pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", "EC",
                 id="p256-es256"),  # RFC7518 §3.4: the curve decides, not a fixed ES384
]


@pytest.mark.parametrize(("make", "alg", "kty"), KEYS)
def test_assertion_signed_with_the_keys_own_algorithm(make: MakeKey, alg: str, kty: str) -> None:
    key: PrivateKey = make()
    token = client_assertion(key, client_id="bhi", token_url=TOKEN_URL, kid="k1", now=1000)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": "k1", "typ": "JWT"}
    claims = jwt.decode(token, key.public_key(), algorithms=[alg], audience=TOKEN_URL,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "bhi"
    assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME == 300  # SMART: at most 5 min
    assert public_jwk(key)["kty"] == kty


def test_each_assertion_has_its_own_jti_and_jku_when_given() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    first = client_assertion(key, client_id="bhi", token_url=TOKEN_URL, kid="k1")
    second = client_assertion(key, client_id="bhi", token_url=TOKEN_URL, kid="k1",
                              jwks_url="https://app.example/jwks.json")
    decode = {"options": {"verify_signature": False}}
    assert jwt.decode(first, **decode)["jti"] != jwt.decode(second, **decode)["jti"]
    assert "jku" not in jwt.get_unverified_header(first)
    assert jwt.get_unverified_header(second)["jku"] == "https://app.example/jwks.json"


@pytest.mark.parametrize(("make", "alg", "kty"), KEYS)
def test_public_jwk_has_no_private_members(make: MakeKey, alg: str, kty: str) -> None:
    jwk = public_jwk(make())
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()


@pytest.mark.parametrize(("make", "alg", "kty"), KEYS)
def test_the_apps_key_set_names_the_algorithm_it_signs_with(
    make: MakeKey, alg: str, kty: str, tmp_path: Path
) -> None:
    from smart_app.config import EhrRegistration, Settings
    from smart_app.jwks import public_jwks

    key = make()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    registration = EhrRegistration(iss="https://ehr.example/fhir", client_id="bhi",
                                   client_auth="private_key_jwt", private_key_path=pem, kid="k1")
    settings = Settings(registrations=[registration])  # type: ignore[call-arg]
    (jwk,) = public_jwks(settings)["keys"]
    assert jwk["alg"] == alg
    assert jwk["kid"] == "k1"
    assert "d" not in jwk
