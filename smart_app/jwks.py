"""``GET /.well-known/jwks.json``: the app's public keys, for EHRs that register a JWKS URL.

A confidential client with asymmetric authentication (``private_key_jwt``; SMART App Launch 2.2
client-confidential-asymmetric.md) signs its token-request assertions with a private key and
registers the public half with the EHR, as a JWKS or — so keys can rotate without a new
registration — a JWKS URL. This route is that URL: one JWK per registration using
``private_key_jwt``, with the registration's ``kid`` and the algorithm the app signs with
(``bhi_fhir.fhir.auth.alg_for_key``: RS384 for RSA, ES384 for P-384, ES256 for P-256, as every
assertion is signed). Private parts are never included. The spec asks the key set's server
to send ``Cache-Control``; it is public for an hour.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bhi_fhir.fhir.auth import alg_for_key, load_private_key, public_jwk
from smart_app.config import Settings

logger = logging.getLogger(__name__)

router = APIRouter()

JWKS_PATH = "/.well-known/jwks.json"


def public_jwks(settings: Settings) -> dict[str, Any]:
    """The public JWK of every ``private_key_jwt`` registration (one per ``kid``)."""
    keys: dict[str, dict[str, Any]] = {}
    for registration in settings.registrations:
        if registration.client_auth != "private_key_jwt" or registration.private_key_path is None:
            continue
        key = load_private_key(registration.private_key_path.read_text())
        assert registration.kid is not None
        keys[registration.kid] = public_jwk(key) | {
            "kid": registration.kid,
            "alg": alg_for_key(key),
            "use": "sig",
        }
    return {"keys": list(keys.values())}


@router.get(JWKS_PATH)
async def jwks(request: Request) -> Response:
    try:
        body = public_jwks(request.app.state.settings)
    except (OSError, ValueError, TypeError) as exc:
        logger.error("the app's key set could not be read (%s)", type(exc).__name__)
        return JSONResponse({"keys": []}, status_code=503, headers={"Cache-Control": "no-store"})
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})
