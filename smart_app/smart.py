"""SMART App Launch 2.2 client pieces: discovery, scopes, PKCE, the authorize URL, tokens.

Discovery (app-launch.md "Retrieve .well-known"): ``GET {iss}/.well-known/smart-configuration``
first; a server without it is asked for its CapabilityStatement and the legacy ``oauth-uris``
extension. A server whose ``code_challenge_methods_supported`` lacks ``S256`` is refused.

Token requests go through Authlib's httpx integration (``AsyncOAuth2Client``): it sends
``client_id`` in the body for public clients only, HTTP Basic for ``client_secret_basic`` and a
signed assertion for ``private_key_jwt`` — the SMART token parameter table exactly.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from bhi_fhir.fhir.auth import alg_for_key, client_assertion, load_private_key
from bhi_fhir.fhir.smart_config import from_capability_statement, from_well_known
from smart_app.config import EhrRegistration
from smart_app.sessions import LaunchContext, TokenSet

logger = logging.getLogger(__name__)



class LaunchError(Exception):
    """A launch that cannot go on; ``title`` and ``str(self)`` are shown to the person, with the
    authorization server's own ``error`` and ``error_description`` when it sent them."""

    def __init__(
        self,
        title: str,
        message: str,
        status: int = 400,
        *,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.title = title
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    code_challenge_methods: tuple[str, ...]
    capabilities: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    source: str  # "well-known" | "capability-statement"
    issuer: str | None = None  # OpenID Connect issuer (required with sso-openid-connect)
    jwks_uri: str | None = None  # the key set the id_token is signed with

    @property
    def v2(self) -> bool:
        """Whether v2 scopes may be sent: the server says so, or says nothing about v1."""
        caps = set(self.capabilities)
        if "permission-v2" in caps:
            return True
        return "permission-v1" not in caps


def _absolute(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise LaunchError("Authorization server not usable", f"its {what} is not an absolute URL")
    return value


async def discover(http: httpx.AsyncClient, iss: str) -> SmartConfiguration:
    """The authorization server of ``iss`` (which the caller checked against the allow-list)."""
    try:
        response = await http.get(
            f"{iss}/.well-known/smart-configuration", headers={"Accept": "application/json"}
        )
        if response.status_code == 200:
            body = response.json()
            if isinstance(body, dict) and body.get("token_endpoint"):
                return _from_well_known(body)
        return await _from_capability_statement(http, iss)
    except httpx.HTTPError as exc:
        logger.warning("SMART discovery failed: %s", type(exc).__name__)
        raise LaunchError(
            "The EHR's FHIR server did not answer", "discovery failed; try the launch again", 502
        ) from None
    except ValueError:
        raise LaunchError(
            "Authorization server not usable", "its SMART configuration is not JSON", 502
        ) from None


def _from_well_known(body: dict[str, Any]) -> SmartConfiguration:
    smart = from_well_known(body)  # the one SMART discovery reader
    if smart is None:
        raise LaunchError("Authorization server not usable", "it names no token URL", 502)
    return SmartConfiguration(
        authorization_endpoint=_absolute(smart.authorization_endpoint, "authorize URL"),
        token_endpoint=_absolute(smart.token_endpoint, "token URL"),
        code_challenge_methods=smart.code_challenge_methods,
        capabilities=smart.capabilities,
        scopes_supported=smart.scopes_supported,
        source="well-known",
        issuer=_optional_url(smart.issuer),
        jwks_uri=_optional_url(smart.jwks_uri),
    )


def _optional_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


async def _from_capability_statement(http: httpx.AsyncClient, iss: str) -> SmartConfiguration:
    response = await http.get(f"{iss}/metadata", headers={"Accept": "application/fhir+json"})
    if response.status_code != 200:
        raise LaunchError(
            "Authorization server not found",
            "the FHIR server publishes neither .well-known/smart-configuration nor a "
            "CapabilityStatement",
            502,
        )
    smart = from_capability_statement(response.json())  # the one SMART discovery reader
    if smart is None or smart.authorization_endpoint is None:
        raise LaunchError(
            "Authorization server not found", "the FHIR server does not name one", 502
        )
    # The legacy extension cannot say which PKCE methods are supported; SMART 2.x servers
    # SHALL support S256, and the token call fails if this one does not.
    return SmartConfiguration(
        authorization_endpoint=_absolute(smart.authorization_endpoint, "authorize URL"),
        token_endpoint=_absolute(smart.token_endpoint, "token URL"),
        code_challenge_methods=("S256",),
        capabilities=(),
        scopes_supported=(),
        source="capability-statement",
    )


# --------------------------------------------------------------------------- scopes

_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z*]+)\.([a-z*]+)(\?.*)?$")


def to_v1(scope: str) -> str:
    """A v2 resource scope in v1 form (scopes-and-launch-context.md l.80–84); others unchanged."""
    match = _SCOPE.match(scope)
    if match is None:
        return scope
    level, kind, perms, _query = match.groups()
    if perms in ("read", "write", "*"):
        return scope
    wanted = set(perms)
    if wanted <= {"r", "s"}:
        v1 = "read"
    elif wanted <= {"c", "u", "d"}:
        v1 = "write"
    else:
        v1 = "*"
    return f"{level}/{kind}.{v1}"


def requested_scopes(
    registration: EhrRegistration, config: SmartConfiguration, *, ehr_launch: bool
) -> str:
    scopes = registration.scopes.split()
    scopes = [s for s in scopes if s not in ("launch", "launch/patient", "launch/encounter")]
    context = ["launch"] if ehr_launch else ["launch/patient", "launch/encounter"]
    if not config.v2:
        scopes = [to_v1(s) for s in scopes]
    return " ".join(dict.fromkeys(context + scopes))


def patient_level_only(granted: str) -> bool:
    """Whether every resource scope granted is patient-level (no user/ or system/ scope)."""
    levels = {m.group(1) for s in granted.split() if (m := _SCOPE.match(s))}
    return levels <= {"patient"}


# --------------------------------------------------------------------------- PKCE + authorize


def new_state() -> str:
    return secrets.token_urlsafe(32)  # 256 bits (≥ 122 required)


def new_code_verifier() -> str:
    return secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43–128


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    config: SmartConfiguration,
    registration: EhrRegistration,
    *,
    redirect_uri: str,
    scope: str,
    state: str,
    code_verifier: str,
    launch: str | None,
    nonce: str | None = None,
) -> str:
    if "S256" not in config.code_challenge_methods:
        raise LaunchError(
            "Authorization server refused",
            "it does not support PKCE with S256 (code_challenge_methods_supported), which "
            "SMART App Launch 2 requires; no authorization request was sent",
        )
    params = {
        "response_type": "code",
        "client_id": registration.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "aud": registration.iss,
        "code_challenge": s256(code_verifier),
        "code_challenge_method": "S256",
    }
    if launch is not None:
        params["launch"] = launch
    if nonce is not None:
        params["nonce"] = nonce  # OIDC: echoed in the id_token, which binds it to this launch
    sep = "&" if "?" in config.authorization_endpoint else "?"
    return config.authorization_endpoint + sep + urlencode(params)


# --------------------------------------------------------------------------- tokens


class SmartPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's ``private_key_jwt`` within SMART's rules (client-confidential-asymmetric.md).

    Authlib's default assertion lives 3600 s (SMART: ``exp`` at most 5 minutes ahead) and only
    imports RSA keys; this signs with the one assertion builder the backend-services client
    uses (``bhi_fhir.fhir.auth.client_assertion``): RS384, or ES384/ES256 by the EC key's
    curve, with ``kid`` and a fresh ``jti`` every time.
    """

    def __init__(self, key_pem: str, kid: str) -> None:
        self._key = load_private_key(key_pem)
        super().__init__(alg=alg_for_key(self._key))
        self._kid = kid

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return client_assertion(self._key, client_id=auth.client_id, token_url=token_endpoint,
                                kid=self._kid)


def oauth_client(registration: EhrRegistration, timeout: float) -> AsyncOAuth2Client:
    if registration.client_auth == "private_key_jwt":
        assert registration.private_key_path is not None
        key = registration.private_key_path.read_text()
        client = AsyncOAuth2Client(
            client_id=registration.client_id,
            client_secret=key,
            token_endpoint_auth_method="private_key_jwt",  # noqa: S106 — a method name
            timeout=timeout,
        )
        assert registration.kid is not None
        client.register_client_auth_method(SmartPrivateKeyJWT(key, registration.kid))
        return client
    if registration.client_auth == "client_secret_basic":
        assert registration.client_secret is not None
        return AsyncOAuth2Client(
            client_id=registration.client_id,
            client_secret=registration.client_secret.get_secret_value(),
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            timeout=timeout,
        )
    return AsyncOAuth2Client(
        client_id=registration.client_id,
        token_endpoint_auth_method="none",  # noqa: S106
        timeout=timeout,
    )


def _token_set(token: dict[str, Any], token_endpoint: str, previous: TokenSet | None) -> TokenSet:
    if not token.get("access_token") or str(token.get("token_type", "")).lower() != "bearer":
        logger.warning("the token response has no bearer access token")
        raise LaunchError("Sign-in failed", "the token response has no bearer access token", 502)
    expires_in = token.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in else None
    except (TypeError, ValueError):
        lifetime = None
    return TokenSet(
        access_token=str(token["access_token"]),
        token_type="Bearer",  # noqa: S106 — the OAuth token type
        # The server may grant other scopes than requested; we keep what it says it granted.
        scope=str(token.get("scope") or (previous.scope if previous else "")),
        expires_at=time.time() + lifetime if lifetime else None,
        lifetime=lifetime,  # refreshed ahead by a fraction of it (smart_app.tokens)
        # A rotated refresh token replaces the old one; none back means the old one stays.
        refresh_token=token.get("refresh_token") or (previous.refresh_token if previous else None),
        # The id_token verified at sign-in stays; one from a refresh is not re-verified, so it
        # is not kept (the launch context, fhirUser included, does not change on refresh).
        id_token=previous.id_token if previous else token.get("id_token"),
        token_endpoint=token_endpoint,
    )


def _context(token: dict[str, Any]) -> LaunchContext:
    banner = token.get("need_patient_banner")
    fhir_context = token.get("fhirContext")
    return LaunchContext(
        patient=_str(token.get("patient")),
        encounter=_str(token.get("encounter")),
        fhir_user=None,  # set from the id_token only once it is verified (smart_app.idtoken)
        need_patient_banner=True if banner is None else bool(banner),
        smart_style_url=_str(token.get("smart_style_url")),
        intent=_str(token.get("intent")),
        tenant=_str(token.get("tenant")),
        fhir_context=[c for c in fhir_context if isinstance(c, dict)]
        if isinstance(fhir_context, list)
        else [],
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def _token_call(call: Any, title: str, what: str) -> dict[str, Any]:
    """Await a token-endpoint call; each way it can fail is its own log line (the OAuth
    ``error`` code, an HTTP status or an exception type: never a token, code or description)
    and its own :class:`LaunchError`, which carries the server's ``error`` and
    ``error_description`` to the page."""
    status = 401 if what == "refresh" else 502
    try:
        token = await call
    except httpx.HTTPStatusError as exc:  # a 5xx, or a 4xx whose body is not OAuth JSON
        code = exc.response.status_code
        logger.warning("%s failed: the token endpoint answered HTTP %d", what, code)
        raise LaunchError(
            title, f"the authorization server answered HTTP {code}", status
        ) from None
    except httpx.HTTPError as exc:
        logger.warning("%s failed: the token endpoint did not answer (%s)", what,
                       type(exc).__name__)
        raise LaunchError(title, "the authorization server did not answer", status) from None
    except OAuthError as exc:
        error = str(exc.error or "oauth_error")
        logger.warning("%s refused by the authorization server: %s", what, error)
        raise LaunchError(
            title,
            "the authorization server refused the request",
            status,
            error=error,
            description=str(exc.description or "") or None,
        ) from None
    except ValueError:  # a 2xx whose body is not a JSON object
        logger.warning("%s failed: the token response is not JSON", what)
        raise LaunchError(
            title, "the authorization server's answer could not be read", status
        ) from None
    return dict(token)


async def exchange_code(
    registration: EhrRegistration,
    *,
    token_endpoint: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    timeout: float,
) -> tuple[TokenSet, LaunchContext]:
    async with oauth_client(registration, timeout) as client:
        token = await _token_call(
            client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            ),
            "Sign-in failed",
            "token request",
        )
    return _token_set(dict(token), token_endpoint, None), _context(dict(token))


async def refresh(registration: EhrRegistration, tokens: TokenSet, timeout: float) -> TokenSet:
    """New tokens from the refresh token; a rotated refresh token replaces the old one."""
    if not tokens.refresh_token:
        raise LaunchError("Session expired", "launch the app again from the EHR", 401)
    async with oauth_client(registration, timeout) as client:
        token = await _token_call(
            client.refresh_token(tokens.token_endpoint, refresh_token=tokens.refresh_token),
            "Session expired",
            "refresh",
        )
    return _token_set(dict(token), tokens.token_endpoint, tokens)
