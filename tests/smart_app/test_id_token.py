"""The id_token is verified before ``fhirUser`` is read (OpenID Connect Core §3.1.3.7; SMART 2.2
scopes-and-launch-context.md "openid fhirUser"): signature against the EHR's published JWKS,
``iss``, ``aud``, ``exp``/``iat`` and the ``nonce`` sent on authorize. Any failure refuses the
sign-in with a clear page and no session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from smart_app.config import EhrRegistration
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState, signing_key
from tests.smart_app.conftest import APP_URL, CLIENT_ID, ehr_launch, make_settings


def _signed_in_user(client: TestClient) -> str | None:
    session = client.app.state.store.get(client.cookies.get("bhi_session"))  # type: ignore[attr-defined]
    assert session is not None and session.authorized
    user: str | None = session.context.fhir_user
    return user


def _assert_refused(client: TestClient, callback: Any, why: str) -> None:
    assert callback.status_code == 401, callback.text
    assert "identity token could not be verified" in callback.text
    assert why in callback.text
    assert client.get("/patient/p1").status_code == 401  # no session was created


def test_verified_id_token_gives_fhir_user(app_client: TestClient, ehr: AuthServerState) -> None:
    callback = ehr_launch(app_client, ehr)
    assert callback.status_code == 303
    assert _signed_in_user(app_client) == "Practitioner/cm1"
    authorize = ehr.authorize_params[-1]
    assert len(authorize["nonce"]) >= 22  # a nonce is sent with openid, and checked
    assert ("GET", "/jwks") in ehr.requests  # the key came from the published jwks_uri


def test_jwks_uri_from_openid_discovery(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.jwks_in_smart_configuration = False
    assert ehr_launch(app_client, ehr).status_code == 303
    assert _signed_in_user(app_client) == "Practitioner/cm1"
    assert ("GET", "/.well-known/openid-configuration") in ehr.requests


def test_bad_signature_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.id_token_signer = signing_key(1)  # not the published key, but the same kid
    _assert_refused(app_client, ehr_launch(app_client, ehr), "signature does not verify")


def test_unpublished_key_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.id_token_signer = signing_key(1)
    ehr.id_token_kid = "someone-else"  # a kid the EHR does not publish
    _assert_refused(app_client, ehr_launch(app_client, ehr), "key the EHR does not publish")
    assert ehr.requests.count(("GET", "/jwks")) == 1  # just fetched: not asked again


def test_wrong_audience_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.id_token_claims = {"aud": "another-app"}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "another app (aud)")


def test_expired_id_token_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    now = int(time.time())
    ehr.id_token_claims = {"iat": now - 7200, "exp": now - 3600}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "has expired")


def test_id_token_from_the_future_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    now = int(time.time())
    ehr.id_token_claims = {"iat": now + 3600, "exp": now + 7200}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "not valid yet")


def test_wrong_issuer_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.id_token_claims = {"iss": "https://evil.example"}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "another issuer (iss)")


def test_wrong_nonce_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.id_token_claims = {"nonce": "replayed-from-another-sign-in"}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "(nonce)")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub"])
def test_missing_claims_are_refused(
    app_client: TestClient, ehr: AuthServerState, missing: str
) -> None:
    ehr.id_token_claims = {missing: None}
    _assert_refused(app_client, ehr_launch(app_client, ehr), "not valid")


def test_unsigned_or_hmac_id_token_is_refused(
    app_client: TestClient, ehr: AuthServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jwt

    real_encode = jwt.encode

    def hmac_encode(payload: dict[str, Any], key: Any, algorithm: str, **kw: Any) -> str:
        # The old fixture's shape: HS256 with a secret the app never had.
        return real_encode(payload, "x" * 32, algorithm="HS256", headers=kw.get("headers"))

    monkeypatch.setattr("tests.smart_app.auth_server.jwt.encode", hmac_encode)
    _assert_refused(app_client, ehr_launch(app_client, ehr), "HS256, which is not accepted")


def test_no_issuer_known_is_refused(ehr: AuthServerState) -> None:
    ehr.well_known = False  # CapabilityStatement discovery: no issuer, and none registered
    registration = EhrRegistration(iss=ehr.fhir_base, client_id=CLIENT_ID)
    settings = make_settings(ehr, registrations=[registration])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        _assert_refused(client, ehr_launch(client, ehr), "does not publish an OpenID issuer")


def test_no_id_token_means_no_fhir_user(app_client: TestClient, ehr: AuthServerState) -> None:
    assert ehr_launch(app_client, ehr, fhirUser=None).status_code == 303
    assert _signed_in_user(app_client) is None
