"""SMART discovery read in one place: the well-known configuration and the legacy oauth-uris
extension (SMART App Launch 2.2 conformance.html)."""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.fhir.smart_config import OAUTH_URIS, from_capability_statement, from_well_known

CONFORMANCE = "https://hl7.org/fhir/smart-app-launch/conformance.html"  # well-known fields
TOKEN = "https://auth.example/token"


def oauth_uris(**uris: str) -> dict[str, Any]:
    return {"url": OAUTH_URIS,
            "extension": [{"url": name, "valueUri": uri} for name, uri in uris.items()]}


def test_well_known_fields() -> None:  # CONFORMANCE: the metadata a server publishes
    smart = from_well_known({
        "token_endpoint": TOKEN,
        "authorization_endpoint": "https://auth.example/authorize",
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "scopes_supported": ["system/*.rs"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-ehr"],
        "issuer": "https://auth.example",
        "jwks_uri": "https://auth.example/jwks",
    })
    assert smart is not None
    assert smart.token_endpoint == TOKEN
    assert smart.backend_services
    assert smart.scopes_supported == ("system/*.rs",)
    assert smart.code_challenge_methods == ("S256",)
    assert (smart.issuer, smart.jwks_uri) == ("https://auth.example", "https://auth.example/jwks")
    assert smart.source == "well-known"


@pytest.mark.parametrize(
    "body",
    [None, {}, {"token_endpoint": ""}, {"token_endpoint": 42}, ["not", "an", "object"]],
    ids=["none", "empty", "empty-token", "token-not-text", "not-an-object"],
)
def test_well_known_without_a_token_endpoint_is_none(body: Any) -> None:
    assert from_well_known(body) is None


@pytest.mark.parametrize(
    ("missing", "gap"),
    [("grant_types_supported", "client_credentials"),
     ("token_endpoint_auth_methods_supported", "private_key_jwt")],
    ids=["no-client-credentials", "no-private-key-jwt"],
)
def test_backend_services_gaps(missing: str, gap: str) -> None:  # SMART backend-services.md
    body = {"token_endpoint": TOKEN, "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"]}
    del body[missing]
    smart = from_well_known(body)
    assert smart is not None and not smart.backend_services
    assert any(gap in g for g in smart.backend_services_gaps)


@pytest.mark.parametrize(
    ("rest", "token", "authorize"),
    [
        ([{"mode": "server", "security": {"extension": [
            oauth_uris(token=TOKEN, authorize="https://auth.example/authorize")]}}],
         TOKEN, "https://auth.example/authorize"),
        ([{"mode": "client", "security": {"extension": [oauth_uris(token="https://c/t")]}},
          {"mode": "server", "security": {"extension": [oauth_uris(token=TOKEN)]}}],
         TOKEN, None),
        ([{"mode": "server", "security": {"extension": [oauth_uris(authorize="https://a")]}}],
         None, None),
        ([{"mode": "server"}], None, None),
        ([], None, None),
    ],
    ids=["server-rest", "server-rest-first", "no-token", "no-security", "no-rest"],
)
def test_oauth_uris(rest: list[dict[str, Any]], token: str | None,
                    authorize: str | None) -> None:  # CONFORMANCE: legacy discovery
    smart = from_capability_statement({"resourceType": "CapabilityStatement", "rest": rest})
    if token is None:
        assert smart is None
        return
    assert smart is not None
    assert (smart.token_endpoint, smart.authorization_endpoint) == (token, authorize)
    assert smart.source == "capability-statement"
    assert not smart.backend_services  # only the well-known configuration can say so
