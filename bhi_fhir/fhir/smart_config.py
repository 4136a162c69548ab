"""SMART discovery, read in one place: what a FHIR server's authorization server is and can do.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/conformance.html) publishes it at
``{base}/.well-known/smart-configuration``; servers from before that name the authorize and
token URLs in the CapabilityStatement's ``rest.security`` ``oauth-uris`` extension.
:func:`from_well_known` and :func:`from_capability_statement` read either into one
:class:`SmartInfo`; fetching the documents stays with each caller (the readiness check, the
backend-services client, the app's launch). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@dataclass(frozen=True)
class SmartInfo:
    """The SMART configuration a server advertises (well-known, else oauth-uris)."""

    token_endpoint: str | None
    authorization_endpoint: str | None = None
    grant_types: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    source: Literal["well-known", "capability-statement"] = "well-known"
    scopes_supported: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()
    issuer: str | None = None  # the OpenID issuer, when the server is one
    jwks_uri: str | None = None

    @property
    def backend_services_gaps(self) -> tuple[str, ...]:
        """What SMART Backend Services needs and the well-known configuration does not say
        (SMART App Launch 2.2 conformance.md / backend-services.md): a ``token_endpoint``,
        ``client_credentials`` in ``grant_types_supported`` and ``private_key_jwt`` in
        ``token_endpoint_auth_methods_supported``."""
        gaps = []
        if self.source != "well-known" or not self.token_endpoint:
            gaps.append("no token_endpoint in .well-known/smart-configuration")
        if "client_credentials" not in self.grant_types:
            gaps.append("client_credentials not in grant_types_supported")
        if "private_key_jwt" not in self.auth_methods:
            gaps.append("private_key_jwt not in token_endpoint_auth_methods_supported")
        return tuple(gaps)

    @property
    def backend_services(self) -> bool:
        """Whether the server advertises ``client_credentials`` with ``private_key_jwt``."""
        return not self.backend_services_gaps


def from_well_known(config: Mapping[str, Any] | None) -> SmartInfo | None:
    """A ``.well-known/smart-configuration`` body; None without a ``token_endpoint`` (a body
    that names no authorization server is no SMART configuration)."""
    if not isinstance(config, Mapping):
        return None
    token = config.get("token_endpoint")
    if not isinstance(token, str) or not token:
        return None
    return SmartInfo(
        token_endpoint=token,
        authorization_endpoint=_text(config.get("authorization_endpoint")),
        grant_types=_strings(config.get("grant_types_supported")),
        auth_methods=_strings(config.get("token_endpoint_auth_methods_supported")),
        capabilities=_strings(config.get("capabilities")),
        scopes_supported=_strings(config.get("scopes_supported")),
        code_challenge_methods=_strings(config.get("code_challenge_methods_supported")),
        issuer=_text(config.get("issuer")),
        jwks_uri=_text(config.get("jwks_uri")),
    )


def from_capability_statement(capability: Mapping[str, Any] | None) -> SmartInfo | None:
    """The legacy ``oauth-uris`` extension on a CapabilityStatement's ``rest.security`` (the
    server's own ``rest`` first); None when no ``rest`` names a token URL."""
    if not isinstance(capability, Mapping):
        return None
    rests = _dicts(capability.get("rest"))
    rests.sort(key=lambda rest: rest.get("mode") != "server")  # the server's own first
    for rest in rests:
        security = rest.get("security")
        extensions = security.get("extension") if isinstance(security, Mapping) else None
        for extension in _dicts(extensions):
            if extension.get("url") != OAUTH_URIS:
                continue
            uris = {e.get("url"): e.get("valueUri") for e in _dicts(extension.get("extension"))}
            token = uris.get("token")
            if isinstance(token, str) and token:
                return SmartInfo(
                    token_endpoint=token,
                    authorization_endpoint=_text(uris.get("authorize")),
                    source="capability-statement",
                )
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


__all__ = ["OAUTH_URIS", "SmartInfo", "from_capability_statement", "from_well_known"]
