"""Write the realms Keycloak imports at start, with this machine's TEST keys registered.

    python tools/keycloak/render_realms.py KEYS_DIR IMPORT_DIR

The key pairs are generated here, once per KEYS_DIR (``tools/keycloak/run/keys``, git-ignored),
never checked in: ``es384.pem`` (EC P-384) and ``rs384.pem`` (RSA 2048), TEST ONLY, for the
local Keycloak's backend-services clients. Their public halves go into the realm JSON as each
client's ``jwks.string`` (the value ``@jwks:es384@`` / ``@jwks:rs384@`` in the checked-in
realm files), with the ``kid`` bhi-fhir puts in its assertion header for a PEM key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bhi_fhir.fhir.auth_factory import jwk_thumbprint

HERE = Path(__file__).resolve().parent
REALMS = ("bhi-realm.json", "bhi-other-realm.json")


def _key(path: Path, kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if not path.exists():
        key = (
            ec.generate_private_key(ec.SECP384R1())
            if kind == "es384"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return loaded


def public_jwks(kind: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public = key.public_key()
    jwk: dict[str, Any] = (
        ECAlgorithm.to_jwk(public, as_dict=True)
        if isinstance(public, ec.EllipticCurvePublicKey)
        else RSAAlgorithm.to_jwk(public, as_dict=True)
    )
    # kid = the RFC 7638 thumbprint: what bhi-fhir sends for a PEM key given without --kid
    jwk.update(kid=jwk_thumbprint(key), alg=kind.upper(), use="sig")
    return {"keys": [jwk]}


def _fill(value: Any, jwks: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, jwks) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, jwks) for v in value]
    if isinstance(value, str) and value.startswith("@jwks:") and value.endswith("@"):
        return jwks[value[len("@jwks:"):-1]]
    return value


def main(keys_dir: Path, import_dir: Path) -> None:
    keys_dir.mkdir(parents=True, exist_ok=True)
    import_dir.mkdir(parents=True, exist_ok=True)
    jwks = {}
    for kind in ("es384", "rs384"):
        document = public_jwks(kind, _key(keys_dir / f"{kind}.pem", kind))
        (keys_dir / f"{kind}.jwks.json").write_text(json.dumps(document, indent=1))
        jwks[kind] = json.dumps(document)
    for name in REALMS:
        realm = _fill(json.loads((HERE / name).read_text()), jwks)
        (import_dir / name).write_text(json.dumps(realm, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
