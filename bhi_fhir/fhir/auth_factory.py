"""One way to build a FHIR server's authentication from command-line options or settings.

Every command that talks to a server (``sync``, ``subscribe``, ``bill``, ``measure``,
``doctor``, ``export``, ``registry``) takes the same options, declared once here and put in
its signature by :func:`with_server_auth`, each option defaulting to its ``BHI_FHIR_*``
variable (:class:`bhi_fhir.settings.CliSettings`); the notification receiver reads the same
settings from ``BHI_NOTIFY_*`` (:class:`bhi_fhir.settings.AuthEnv`):

* ``--bearer-token`` — a static token obtained elsewhere; or
* ``--client-id`` + ``--private-key`` — SMART Backend Services (``client_credentials`` with a
  ``private_key_jwt`` assertion). The key file is a PEM private key (RSA or EC P-256/P-384) or
  a JWKS (or single JWK) holding exactly one private key; its ``kid`` comes from the JWK, else
  ``--kid``, else the key's RFC 7638 thumbprint. ``--jwks-url`` is the public JWKS the server
  fetches (sent as the assertion's ``jku``), ``--scope`` overrides the negotiated scopes and
  ``--token-url`` the discovered token endpoint.

Signing uses PyJWT, already the package's JWT library for the backend assertion and ID tokens:
it signs and verifies with an explicit algorithm and header and reads JWKs (``PyJWK``), which
is all a client assertion needs. Authlib stays where it is, the SMART app's OAuth client.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import json
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import jwt
import typer
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bhi_fhir.exit_codes import EXIT_CONFIG, EXIT_UNAVAILABLE
from bhi_fhir.fhir.auth import (
    BackendServicesAuth,
    BearerAuth,
    PrivateKey,
    alg_for_key,
    load_private_key,
    public_jwk,
)
from bhi_fhir.fhir.errors import FhirError, exit_code_for
from bhi_fhir.settings import cli_settings

__all__ = [
    "NO_AUTH",
    "AuthSettings",
    "SigningKey",
    "checked_server",
    "cli_auth",
    "exit_on_failed_request",
    "jwk_thumbprint",
    "load_signing_key",
    "stop",
    "with_server_auth",
]

# RFC 7638 §3.2: the members of the thumbprint's JSON, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


@dataclass(frozen=True)
class SigningKey:
    key: PrivateKey
    kid: str
    alg: str


def jwk_thumbprint(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint of the (public) key, base64url without padding."""
    jwk = public_jwk(key)
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def load_signing_key(data: bytes, *, kid: str | None = None) -> SigningKey:
    """The signing key from a PEM private key or a JWKS/JWK with one private key.

    ValueError says what is wrong (never the key material).
    """
    text = data.lstrip()
    if text.startswith(b"{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError("the key file is neither PEM nor JSON (a JWKS)") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        jwks = keys if isinstance(keys, list) else [document]
        private = [k for k in jwks if isinstance(k, dict) and "d" in k]
        if len(private) != 1:
            raise ValueError(
                f"the JWKS holds {len(private)} private keys: give a file with exactly one"
            )
        jwk = private[0]
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            raise ValueError(f"the JWK cannot be used: {exc}") from None
        if not isinstance(key, PrivateKey):
            raise ValueError("backend services need an RSA or EC private key")
        alg = alg_for_key(key)
        if jwk.get("alg") not in (None, alg):
            raise ValueError(f"the JWK says alg {jwk['alg']}, but its key signs {alg}")
        return SigningKey(key, str(jwk.get("kid") or kid or jwk_thumbprint(key)), alg)
    try:
        key = load_private_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the key file is not a usable PEM private key ({exc})") from None
    return SigningKey(key, kid or jwk_thumbprint(key), alg_for_key(key))


@dataclass(frozen=True)
class AuthSettings:
    """How to authenticate to one FHIR server; :meth:`build` makes the ``httpx.Auth``."""

    bearer_token: str | None = None
    client_id: str | None = None
    private_key: Path | None = None
    jwks_url: str | None = None
    scope: str | None = None
    token_url: str | None = None
    kid: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.bearer_token or self.client_id or self.private_key)

    def build(self, server: str, *, write: bool = True) -> httpx.Auth | None:
        """None for unauthenticated access; ValueError for an unusable combination or key.

        ``write`` False asks only for read scopes (the doctor).
        """
        backend = self.client_id or self.private_key
        if self.bearer_token and backend:
            raise ValueError("give a bearer token or a client id and private key, not both")
        if self.bearer_token:
            return BearerAuth(self.bearer_token)
        if not backend:
            if self.jwks_url or self.scope or self.token_url:
                raise ValueError("the JWKS URL, scope and token URL need a client id")
            return None
        if not self.client_id or self.private_key is None:
            raise ValueError("backend services need both a client id and a private key")
        try:
            data = self.private_key.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the private key {self.private_key}: "
                             f"{exc.strerror}") from None
        signing = load_signing_key(data, kid=self.kid)
        return BackendServicesAuth(
            server,
            client_id=self.client_id,
            private_key=signing.key,
            kid=signing.kid,
            alg=signing.alg,
            scope=self.scope,
            write=write,
            token_url=self.token_url,
            jwks_url=self.jwks_url,
        )

    def for_command(self, server: str, *, write: bool = True) -> httpx.Auth | None:
        """:meth:`build` for a command: a bad combination is a usage error (exit 2)."""
        try:
            return self.build(server, write=write)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--client-id/--private-key") from None


# No credentials: unauthenticated access (a server command's default before its options fill it).
NO_AUTH = AuthSettings()


# --- the command-line options, one definition for every command --------------------------------

BearerTokenOption = Annotated[
    str | None,
    typer.Option("--bearer-token", help="static bearer token [env: BHI_FHIR_TOKEN]"),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option("--client-id",
                 help="SMART backend services client id (with --private-key) "
                 "[env: BHI_FHIR_CLIENT_ID]"),
]
PrivateKeyOption = Annotated[
    Path | None,
    typer.Option("--private-key",
                 help="PEM private key (RSA, EC P-256/P-384) or a JWKS file with one private key "
                 "[env: BHI_FHIR_PRIVATE_KEY]"),
]
JwksUrlOption = Annotated[
    str | None,
    typer.Option("--jwks-url",
                 help="the registered public JWKS URL (sent as the assertion's jku) "
                 "[env: BHI_FHIR_JWKS_URL]"),
]
ScopeOption = Annotated[
    str | None,
    typer.Option("--scope",
                 help="scopes to ask for (default: system/*.rs system/*.cu, or what the "
                 "server's scopes_supported offers for reading and writing) [env: BHI_FHIR_SCOPE]"),
]
TokenUrlOption = Annotated[
    str | None,
    typer.Option("--token-url",
                 help="token endpoint (default: from .well-known/smart-configuration) "
                 "[env: BHI_FHIR_TOKEN_URL]"),
]
KidOption = Annotated[
    str | None,
    typer.Option("--kid",
                 help="key id of a PEM key (default: the JWK's kid, else its RFC 7638 thumbprint) "
                 "[env: BHI_FHIR_KID]"),
]


def checked_server(url: str) -> str:
    """``--server`` as given, once it is an http(s) URL with a host; otherwise one line on
    stderr and exit 78 (configuration): retrying a mistyped URL cannot help. Every command
    taking ``--server`` checks it so, before :func:`cli_auth` builds its credentials."""
    try:
        urllib.parse.urlsplit(url)  # stricter on brackets than httpx: "http://[bad"
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        stop(f"--server {url!r} is not a URL: {exc}", EXIT_CONFIG)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        stop(f"--server {url!r} is not an http(s) URL with a host, e.g. https://ehr.example/fhir",
             EXIT_CONFIG)
    return url


def stop(message: str, code: int) -> NoReturn:
    """A command ends on ``error: message``, one line on stderr, and the exit code: no
    traceback for a mistake in the options, the input or the configuration."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_auth(
    server: str,
    *,
    bearer_token: str | None = None,
    client_id: str | None = None,
    private_key: Path | None = None,
    jwks_url: str | None = None,
    scope: str | None = None,
    token_url: str | None = None,
    kid: str | None = None,
    write: bool = True,
) -> httpx.Auth | None:
    """:meth:`AuthSettings.for_command` from the options one by one."""
    settings = AuthSettings(bearer_token, client_id, private_key, jwks_url, scope, token_url, kid)
    return settings.for_command(server, write=write)


# The seven options every server command takes, in this order: the command's parameter name
# (as Typer names the option's value), the option, and the AuthSettings field it fills.
_AUTH_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    ("token", BearerTokenOption, "bearer_token"),
    ("client_id", ClientIdOption, "client_id"),
    ("private_key", PrivateKeyOption, "private_key"),
    ("jwks_url", JwksUrlOption, "jwks_url"),
    ("scope", ScopeOption, "scope"),
    ("token_url", TokenUrlOption, "token_url"),
    ("kid", KidOption, "kid"),
)

_Command = Callable[..., None]


def with_server_auth(command: _Command) -> _Command:
    """A command that talks to a server declares one parameter
    ``credentials: AuthSettings = NO_AUTH`` where its authentication options go; this puts
    the seven options (``--bearer-token``, ``--client-id``, ``--private-key``, ``--jwks-url``,
    ``--scope``, ``--token-url``, ``--kid``, each with its ``BHI_FHIR_*`` variable) in that
    place of the signature Typer reads, and calls the command with them as one
    :class:`AuthSettings`.
    ``credentials.for_command(server, write=...)`` then builds the ``httpx.Auth``."""
    signature = inspect.signature(command, eval_str=True)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("credentials")
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
        for name, option, _ in _AUTH_OPTIONS
    ]
    # Keyword-only from the first option on: Typer passes every value by name.
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[at + 1:]]
    new_signature = signature.replace(parameters=[*params[:at], *options, *rest])

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        given = {field: kwargs.pop(name, None) for name, _, field in _AUTH_OPTIONS}
        env = cli_settings().credentials()  # an option given wins over its BHI_FHIR_* variable
        values = {field: env[field] if value is None else value for field, value in given.items()}
        command(*args, **kwargs, credentials=AuthSettings(**values))

    run.__signature__ = new_signature  # type: ignore[attr-defined]
    run.__annotations__ = {
        p.name: p.annotation for p in new_signature.parameters.values()
    } | {"return": signature.return_annotation}
    return run


@contextmanager
def exit_on_failed_request(prefix: str, *, retry_hint: str | None = None) -> Iterator[None]:
    """A request to the server that failed ends the command: ``prefix`` and the error's
    message on one stderr line (``retry_hint`` on a second one when running again may help),
    and the exit code :func:`bhi_fhir.fhir.errors.exit_code_for` gives; no traceback."""
    try:
        yield
    except FhirError as err:
        code = exit_code_for(err)
        typer.echo(f"{prefix}{err}", err=True)
        if retry_hint and code == EXIT_UNAVAILABLE:
            typer.echo(retry_hint, err=True)
        raise typer.Exit(code) from None
