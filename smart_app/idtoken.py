"""OpenID Connect ``id_token`` verification before the app trusts ``fhirUser``.

SMART App Launch 2.2 (scopes-and-launch-context.md, "openid fhirUser"; conformance.md):
a server with ``sso-openid-connect`` publishes ``issuer`` and ``jwks_uri`` in its
``.well-known/smart-configuration``; OIDC discovery (``{issuer}/.well-known/openid-configuration``)
is the fallback for the key set. The token is accepted only when

* its signature verifies against a key of that JWKS (asymmetric algorithms only: never ``none``
  or an HMAC keyed by something the server chose),
* ``iss`` is the issuer, ``aud`` contains our ``client_id`` (and ``azp``, if several audiences,
  is our client id), ``exp`` is in the future and ``iat`` not in the future (small leeway),
* ``nonce`` equals the one sent on the authorize request, when one was sent.

Key sets are cached per URL for an hour; a ``kid`` not in the cached set refetches it once
(key rotation).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import jwt

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat
_JWKS_TTL = 3600

_jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}


class IdTokenError(Exception):
    """The id_token cannot be trusted; ``str(self)`` says why (no token content in it)."""


async def _get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise IdTokenError(f"the {what} could not be fetched")
    return body


async def resolve_jwks_uri(http: httpx.AsyncClient, issuer: str, jwks_uri: str | None) -> str:
    """``jwks_uri`` from the SMART configuration, else from the issuer's OIDC discovery."""
    if jwks_uri:
        return jwks_uri
    config = await _get_json(
        http, issuer.rstrip("/") + "/.well-known/openid-configuration", "OpenID configuration"
    )
    if config.get("issuer") != issuer:
        raise IdTokenError("the OpenID configuration names another issuer")
    found = config.get("jwks_uri")
    if not isinstance(found, str) or not found.startswith(("https://", "http://")):
        raise IdTokenError("the OpenID configuration has no jwks_uri")
    return found


async def _key_for(http: httpx.AsyncClient, jwks_uri: str, kid: str | None) -> jwt.PyJWK:
    fetched_now = False
    for _attempt in range(2):
        cached = _jwks_cache.get(jwks_uri)
        if _attempt == 1 or cached is None or time.time() - cached[0] > _JWKS_TTL:
            if _attempt == 1 and fetched_now:
                break
            body = await _get_json(http, jwks_uri, "EHR's key set (jwks_uri)")
            _jwks_cache[jwks_uri] = cached = (time.time(), body)
            fetched_now = True
        keys = [
            k
            for k in cached[1].get("keys") or []
            if isinstance(k, dict) and k.get("use", "sig") == "sig"
        ]
        if kid is None:
            if len(keys) != 1:
                raise IdTokenError("the id_token names no key (kid) and the key set has several")
            matching = keys
        else:
            matching = [k for k in keys if k.get("kid") == kid]
        if matching:
            try:
                return jwt.PyJWK.from_dict(matching[0])
            except jwt.PyJWTError:
                raise IdTokenError("the EHR's signing key is not usable") from None
    raise IdTokenError("the id_token was signed with a key the EHR does not publish")


async def verify_id_token(
    http: httpx.AsyncClient,
    id_token: str,
    *,
    issuer: str | None,
    jwks_uri: str | None,
    client_id: str,
    nonce: str | None,
) -> dict[str, Any]:
    """The verified claims of ``id_token``; :class:`IdTokenError` when it cannot be trusted."""
    if not issuer:
        raise IdTokenError(
            "the EHR does not publish an OpenID issuer (smart-configuration `issuer`), so its "
            "identity token cannot be checked"
        )
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise IdTokenError("the id_token is not a signed JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise IdTokenError(f"the id_token is signed with {alg!s}, which is not accepted")
    key = await _key_for(http, await resolve_jwks_uri(http, issuer, jwks_uri), header.get("kid"))
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise IdTokenError("the id_token has expired") from None
    except jwt.InvalidAudienceError:
        raise IdTokenError("the id_token was issued for another app (aud)") from None
    except jwt.InvalidIssuerError:
        raise IdTokenError("the id_token comes from another issuer (iss)") from None
    except jwt.ImmatureSignatureError:
        raise IdTokenError("the id_token is not valid yet (iat/nbf in the future)") from None
    except jwt.InvalidSignatureError:
        raise IdTokenError("the id_token's signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise IdTokenError(f"the id_token is not valid ({type(exc).__name__})") from None
    if claims["iat"] > time.time() + LEEWAY:
        raise IdTokenError("the id_token is not valid yet (iat in the future)")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenError("the id_token was issued for another app (azp)")
    if nonce is not None and claims.get("nonce") != nonce:
        raise IdTokenError("the id_token does not answer this sign-in (nonce)")
    return claims
