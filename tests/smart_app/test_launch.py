"""SMART App Launch 2.2 against the fixture EHR: the happy paths and every refusal.

Each test names the spec rule it checks (SMART App Launch 2.2, its app-launch page:
https://hl7.org/fhir/smart-app-launch/app-launch.html).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from smart_app.config import EhrRegistration
from smart_app.main import create_app
from tests.smart_app.auth_server import AuthServerState, Client, ServerThread, create_auth_server
from tests.smart_app.conftest import (
    APP_URL,
    CLIENT_ID,
    age_token,
    authorize,
    ehr_launch,
    make_settings,
    start_launch,
)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_ehr_launch_sends_pkce_state_aud_and_launch_scope(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    launch = ehr.new_launch(patient="p1", encounter="e1", fhirUser="Practitioner/cm1")
    first = start_launch(app_client, iss=ehr.fhir_base, launch=launch)
    params = _query(first.headers["location"])
    assert params["aud"] == ehr.fhir_base  # aud = iss
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["launch"] == launch and "launch" in params["scope"].split()
    assert len(params["state"]) >= 21  # token_urlsafe(32): 256 bits ≥ 122
    assert "patient/Patient.rs" in params["scope"].split()  # v2 scopes
    callback = app_client.get(authorize(first), follow_redirects=False)
    assert callback.status_code == 303
    assert callback.headers["location"] == "/patient/p1"
    # Public client: client_id in the body, the verifier sent, no Basic header.
    token_call = ehr.token_requests[-1]
    assert token_call["form"]["client_id"] == CLIENT_ID and not token_call["basic"]
    assert token_call["form"]["code_verifier"]
    page = app_client.get("/patient/p1")
    assert page.status_code == 200 and "Ada Example" in page.text


def test_cookie_is_opaque_httponly_secure_samesite_none(ehr: AuthServerState) -> None:
    settings = make_settings(ehr, cookie_secure=True)
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        response = start_launch(client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=none" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 40 and "." not in value  # an opaque random id, not a signed payload


def test_tokens_never_reach_the_browser(app_client: TestClient, ehr: AuthServerState) -> None:
    callback = ehr_launch(app_client, ehr)
    page = app_client.get("/patient/p1")
    for token in ehr.access_tokens:
        assert token not in callback.headers.get("set-cookie", "")
        assert token not in page.text and token not in callback.headers.get("location", "")
    for refresh in ehr.refresh_tokens:
        assert refresh not in page.text


def test_new_session_id_after_sign_in(app_client: TestClient, ehr: AuthServerState) -> None:
    launch = ehr.new_launch(patient="p1")
    first = start_launch(app_client, iss=ehr.fhir_base, launch=launch)
    before = app_client.cookies.get("bhi_session")
    app_client.get(authorize(first), follow_redirects=False)
    assert app_client.cookies.get("bhi_session") not in (None, before)


def test_standalone_launch_with_default_iss(ehr: AuthServerState) -> None:
    ehr.standalone_patient = "p1"
    settings = make_settings(ehr, default_iss=ehr.fhir_base)
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        first = start_launch(client)
        params = _query(first.headers["location"])
        assert "launch" not in params
        assert {"launch/patient", "launch/encounter"} <= set(params["scope"].split())
        assert "launch" not in params["scope"].split()
        callback = client.get(authorize(first), follow_redirects=False)
        assert callback.headers["location"] == "/patient/p1"


def test_capability_statement_fallback(ehr: AuthServerState) -> None:
    # The legacy CapabilityStatement names no OpenID issuer: the registration does, and the
    # id_token is verified against that issuer's OIDC discovery.
    ehr.well_known = False
    registration = EhrRegistration(iss=ehr.fhir_base, client_id=CLIENT_ID, oidc_issuer=ehr.base)
    with TestClient(
        create_app(make_settings(ehr, registrations=[registration])), base_url=APP_URL
    ) as client:
        callback = ehr_launch(client, ehr)
    assert callback.status_code == 303
    assert ("GET", "/fhir/metadata") in ehr.requests
    assert ("GET", "/.well-known/openid-configuration") in ehr.requests


def test_v1_only_server_gets_v1_scopes(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.capabilities = ["launch-ehr", "permission-v1", "context-ehr-patient"]
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    scopes = _query(first.headers["location"])["scope"].split()
    assert "patient/Patient.read" in scopes and "patient/Task.*" in scopes
    assert not any(s.endswith((".rs", ".cruds")) for s in scopes)


def test_client_secret_basic_omits_client_id(ehr: AuthServerState) -> None:
    ehr.clients[CLIENT_ID] = Client(CLIENT_ID, f"{APP_URL}/callback", secret="s3cret-value")
    registration = EhrRegistration(
        iss=ehr.fhir_base,
        client_id=CLIENT_ID,
        client_auth="client_secret_basic",
        client_secret=SecretStr("s3cret-value"),
    )
    settings = make_settings(ehr, registrations=[registration])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        callback = ehr_launch(client, ehr)
    assert callback.status_code == 303
    call = ehr.token_requests[-1]
    assert call["basic"] and "client_id" not in call["form"]


def test_refresh_replaces_a_rotated_refresh_token(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    for _ in range(3):
        # The fixture invalidates each refresh token once used: the second and third refresh
        # only work if the app kept the rotated one.
        age_token(app_client)
        assert app_client.get("/patient/p1").status_code == 200
    grants = [c["form"]["grant_type"] for c in ehr.token_requests]
    assert grants == ["authorization_code", "refresh_token", "refresh_token", "refresh_token"]


# --------------------------------------------------------------------------- refusals


def test_iss_not_on_allow_list_is_refused_without_contacting_it(
    app_client: TestClient,
) -> None:
    rogue = AuthServerState()
    with ServerThread(create_auth_server(rogue)) as server:
        rogue.base = server.url
        response = start_launch(app_client, iss=f"{server.url}/fhir", launch="x")
    assert response.status_code == 403
    assert "not allowed" in response.text.lower()
    assert rogue.requests == []  # NO request was ever sent to it


def test_state_mismatch_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    callback = authorize(first)
    forged = callback.replace("state=", "state=x")
    response = app_client.get(forged, follow_redirects=False)
    assert response.status_code == 400 and "state mismatch" in response.text
    assert ehr.token_requests == []  # no code exchange


def test_state_from_another_browser_is_refused(ehr: AuthServerState) -> None:
    app = create_app(make_settings(ehr))
    with TestClient(app, base_url=APP_URL) as victim, TestClient(app, base_url=APP_URL) as other:
        first = start_launch(victim, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
        callback = authorize(first)
        response = other.get(callback, follow_redirects=False)  # no / another session cookie
        assert response.status_code == 400
        assert ehr.token_requests == []


def test_state_is_single_use(app_client: TestClient, ehr: AuthServerState) -> None:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    callback = authorize(first)
    assert app_client.get(callback, follow_redirects=False).status_code == 303
    assert app_client.get(callback, follow_redirects=False).status_code == 400


def test_server_without_s256_is_refused(app_client: TestClient, ehr: AuthServerState) -> None:
    ehr.code_challenge_methods = ["plain"]
    response = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    assert response.status_code == 400 and "S256" in response.text
    assert not any(path == "/authorize" for _, path in ehr.requests)


def test_other_patient_refused_under_patient_scopes(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.resources["Patient/p2"] = {"resourceType": "Patient", "id": "p2"}
    ehr_launch(app_client, ehr)
    sent_before = list(ehr.requests)
    response = app_client.get("/patient/p2")
    assert response.status_code == 403 and "one patient only" in response.text
    assert ehr.requests == sent_before  # nothing was read for p2
    assert app_client.get("/registry").status_code == 403


def test_denied_authorization_shows_the_reason_escaped(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    state = _query(first.headers["location"])["state"]
    response = app_client.get(
        "/callback", params={"state": state, "error": "<img src=x onerror=alert(1)>"}
    )
    assert response.status_code == 400
    assert "<img" not in response.text and "&lt;img" in response.text


def test_pages_need_a_session(app_client: TestClient) -> None:
    assert app_client.get("/patient/p1").status_code == 401
    assert app_client.get("/registry").status_code == 401


def test_token_endpoint_errors_are_a_clear_page(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    callback = authorize(first)
    ehr.codes.clear()  # the code expired on the server
    response = app_client.get(callback, follow_redirects=False)
    assert response.status_code == 502 and "refused the request" in response.text
    # The authorization server's own error and description reach the page.
    assert "invalid_grant" in response.text and "unknown or used code" in response.text


def test_discovery_transport_error(app_client: TestClient, ehr: AuthServerState) -> None:
    settings = make_settings(
        ehr, registrations=[EhrRegistration(iss="http://127.0.0.1:9/fhir", client_id="x")]
    )
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        response = start_launch(client, iss="http://127.0.0.1:9/fhir", launch="abc")
    assert response.status_code == 502
    assert isinstance(response, httpx.Response)


def test_private_key_jwt_client(ehr: AuthServerState, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "key.pem").write_bytes(pem)
    ehr.clients[CLIENT_ID] = Client(
        CLIENT_ID, f"{APP_URL}/callback", public_key=public.decode(), kid="k1"
    )
    registration = EhrRegistration(
        iss=ehr.fhir_base,
        client_id=CLIENT_ID,
        client_auth="private_key_jwt",
        private_key_path=tmp_path / "key.pem",
        kid="k1",
    )
    settings = make_settings(ehr, registrations=[registration])
    with TestClient(create_app(settings), base_url=APP_URL) as client:
        callback = ehr_launch(client, ehr)
        assert callback.status_code == 303, callback.text
        age_token(client)  # the page load refreshes: a second assertion (fresh jti) is needed
        assert client.get("/patient/p1").status_code == 200
    assert [c["form"]["grant_type"] for c in ehr.token_requests] == [
        "authorization_code",
        "refresh_token",
    ]
    form = ehr.token_requests[-1]["form"]
    assert "client_id" not in form and form["client_assertion_type"].endswith("jwt-bearer")
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["alg"] == "RS384" and header["kid"] == "k1"
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300  # SMART: at most five minutes
    assert claims["aud"] == f"{ehr.base}/token" and claims["iss"] == claims["sub"] == CLIENT_ID
