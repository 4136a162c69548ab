"""The environment settings of the command line and the notification receiver: one
pydantic-settings model each, the only place their environment variables are read.

Every variable starts with ``BHI_``; what follows names the process that reads it:

* ``BHI_APP_*`` — the SMART app (``serve``): :class:`smart_app.config.Settings`;
* ``BHI_NOTIFY_*`` — the notification receiver the app mounts (``/fhir-notify``):
  :class:`bhi_fhir.sync.webhook.NotifySettings`, its credentials as :class:`AuthEnv`;
* ``BHI_FHIR_*``, ``BHI_LOG_FORMAT``, ``BHI_NOTIFY_SECRET`` — the commands:
  :class:`CliSettings`, each the default of a command-line option, which wins when given;
* ``BHI_STATE_URL`` — the operational store of every process (commands, app, receiver), read
  by the store's own default (:func:`bhi_fhir.store.default_state_url`) when no URL is given.

An empty variable counts as unset. A value that cannot be used is a configuration error (exit
78) for a command; the receiver's queue sizes fall back to their defaults with a warning, so a
typo does not take the app down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bhi_fhir.logs import LogFormat

__all__ = ["CREDENTIALS", "ENV_PREFIX", "SETTINGS_CONFIG", "AuthEnv", "CliSettings", "cli_settings"]

ENV_PREFIX = "BHI_"
# No populate_by_name: with it a field's bare name (CLIENT_ID, LOG_FORMAT) is read from the
# environment too, and only BHI_ names may be.
SETTINGS_CONFIG = SettingsConfigDict(extra="ignore", env_ignore_empty=True, frozen=True)


def _env(name: str) -> Any:
    """A field read from ``BHI_{name}`` only."""
    return AliasChoices(f"{ENV_PREFIX}{name}")


CREDENTIALS = ("bearer_token", "client_id", "private_key", "jwks_url", "scope", "token_url", "kid")


class AuthEnv(BaseSettings):
    """The seven credentials of :class:`~bhi_fhir.fhir.auth_factory.AuthSettings`, flat."""

    bearer_token: str | None = None
    client_id: str | None = None
    private_key: Path | None = None
    jwks_url: str | None = None
    scope: str | None = None
    token_url: str | None = None
    kid: str | None = None

    @field_validator("bearer_token", "client_id", "jwks_url", "scope", "token_url", "kid",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    def credentials(self) -> dict[str, Any]:
        """The seven values by ``AuthSettings``' field names."""
        return {name: getattr(self, name) for name in CREDENTIALS}


class CliSettings(BaseSettings):
    """The commands' environment: each value is the default of the option named beside it."""

    model_config = SETTINGS_CONFIG

    log_format: LogFormat = Field(default=LogFormat.auto, validation_alias=_env("LOG_FORMAT"))
    notify_secret: str | None = Field(default=None, validation_alias=_env("NOTIFY_SECRET"))
    # The server commands' credentials (--bearer-token, --client-id, ...). BHI_FHIR_TOKEN is the
    # bearer token's name since the first release; BHI_FHIR_BEARER_TOKEN matches the receiver's.
    bearer_token: str | None = Field(
        default=None, validation_alias=AliasChoices("BHI_FHIR_TOKEN", "BHI_FHIR_BEARER_TOKEN"))
    client_id: str | None = Field(default=None, validation_alias=_env("FHIR_CLIENT_ID"))
    private_key: Path | None = Field(default=None, validation_alias=_env("FHIR_PRIVATE_KEY"))
    jwks_url: str | None = Field(default=None, validation_alias=_env("FHIR_JWKS_URL"))
    scope: str | None = Field(default=None, validation_alias=_env("FHIR_SCOPE"))
    token_url: str | None = Field(default=None, validation_alias=_env("FHIR_TOKEN_URL"))
    kid: str | None = Field(default=None, validation_alias=_env("FHIR_KID"))

    def credentials(self) -> dict[str, Any]:
        """The seven ``BHI_FHIR_*`` values by ``AuthSettings``' field names."""
        return {name: getattr(self, name) for name in CREDENTIALS}


def cli_settings() -> CliSettings:
    """The commands' settings, read from the environment as it is now (a test runner or a
    long-lived caller may have changed it since the last command)."""
    return CliSettings()
