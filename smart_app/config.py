"""The app's settings: one pydantic-settings model, read once (``get_settings()``).

Environment variables start with ``BHI_APP_``; nested values are JSON, e.g.::

    BHI_APP_REGISTRATIONS='[{"iss": "https://ehr.example/fhir", "client_id": "bhi"}]'
    BHI_APP_BASE_URL=https://bhi.example        # where /launch and /callback are served
    BHI_APP_COOKIE_SECURE=false                 # only for plain-http localhost tests

Each :class:`EhrRegistration` is one entry of the issuer allow-list: a launch whose ``iss`` is not
listed is refused before any request is sent to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ClientAuth = Literal["public", "client_secret_basic", "private_key_jwt"]

# Patient-level v2 scopes the patient view and its actions need (SMART 2.2 scopes-and-launch-
# context.md). ``launch`` (EHR launch) or ``launch/patient`` (standalone) is added per launch.
DEFAULT_SCOPES = (
    "openid fhirUser online_access "
    "patient/Patient.rs patient/QuestionnaireResponse.crs patient/Questionnaire.rs "
    "patient/Observation.rs patient/CarePlan.cruds patient/Task.cruds "
    "patient/ServiceRequest.cruds patient/Encounter.cruds patient/Consent.cruds "
    "patient/Procedure.rs patient/DiagnosticReport.rs patient/Provenance.cr"
)


class EhrRegistration(BaseModel):
    """How this app is registered with one EHR (one FHIR server, one authorization server)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(description="the FHIR base URL exactly as the EHR sends it as `iss`")
    client_id: str
    name: str = ""
    scopes: str = DEFAULT_SCOPES
    client_auth: ClientAuth = "public"
    client_secret: SecretStr | None = None
    private_key_path: Path | None = None  # PEM, RSA (RS384) or EC (ES384)
    kid: str | None = None
    # The OpenID issuer when the EHR's discovery does not name one (legacy servers found through
    # the CapabilityStatement); an id_token is verified against it or the launch is refused.
    oidc_issuer: str | None = None
    # Origins allowed to frame the app (CSP frame-ancestors), e.g. ["https://ehr.example"];
    # the app is shown inside this EHR's iframe and nowhere else. Default: only the app itself.
    frame_ancestors: tuple[str, ...] = ("'self'",)

    @field_validator("frame_ancestors")
    @classmethod
    def _ancestors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for source in value:
            if source in ("'self'", "'none'"):
                continue
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?", source):
                raise ValueError(
                    f"frame_ancestors: {source!r} is not an origin (scheme://host[:port]) "
                    "or 'self' / 'none'"
                )
        if not value:
            raise ValueError("frame_ancestors: name at least one source (or 'none')")
        return value

    @field_validator("iss")
    @classmethod
    def _iss(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("iss must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_complete(self) -> EhrRegistration:
        if self.client_auth == "client_secret_basic" and self.client_secret is None:
            raise ValueError(f"{self.iss}: client_secret_basic needs client_secret")
        if self.client_auth == "private_key_jwt" and (
            self.private_key_path is None or self.kid is None
        ):
            raise ValueError(f"{self.iss}: private_key_jwt needs private_key_path and kid")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BHI_APP_", extra="ignore")

    base_url: str = "http://127.0.0.1:8000"  # public URL of the app; redirect_uri = base/callback
    registrations: list[EhrRegistration] = Field(default_factory=list)
    cds_clients: dict[str, str] = Field(default_factory=dict)  # CDS Hooks: JWT iss → JWKS URL
    default_iss: str | None = None  # standalone launch without ?iss=
    cookie_name: str = "bhi_session"
    cookie_secure: bool = True  # SameSite=None needs Secure; false only for http://127.0.0.1
    session_ttl_seconds: int = 8 * 3600
    pending_launch_ttl_seconds: int = 600
    session_db_url: str | None = None  # e.g. sqlite:///sessions.db; None = in memory
    http_timeout: float = 15
    practice_plan: Path | None = None  # default: examples/practice-plan.toml when present
    # Sessions not signed in to an EHR (a launch on its way, the demo): at most this many are
    # kept (the oldest go first), a launch's for ``pending_launch_ttl_seconds`` only.
    max_prelogin_sessions: int = Field(default=1000, ge=1)
    demo: bool = False
    demo_clinic: Path | None = None  # NDJSON directory for --demo
    today: str | None = None  # YYYY-MM-DD, fixes the clock for demos and tests

    @model_validator(mode="after")
    def _demo_is_sealed(self) -> Settings:
        """The demo reads and writes the bundled clinic in memory and nothing else: a setting
        that names an EHR or a database server is refused rather than silently half-used."""
        if self.demo:
            named = [
                name
                for name, given in (
                    ("registrations", bool(self.registrations)),
                    ("default_iss", self.default_iss is not None),
                    (
                        "session_db_url",
                        self.session_db_url is not None
                        and not self.session_db_url.startswith("sqlite:"),
                    ),
                )
                if given
            ]
            if named:
                raise ValueError(
                    f"demo: {', '.join(named)} must not be set (the demo reaches no EHR "
                    "and no database server)"
                )
        return self

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/callback"

    def registration_for(self, iss: str) -> EhrRegistration | None:
        """The allow-list entry for ``iss`` (exact match after trimming a trailing slash)."""
        wanted = iss.rstrip("/")
        return next((r for r in self.registrations if r.iss == wanted), None)


# Environment variables ``serve --demo`` refuses to start with: each names an EHR, a database
# server or the notification receiver's FHIR server, none of which the demo may reach.
DEMO_FORBIDDEN_ENV = (
    "BHI_APP_REGISTRATIONS",
    "BHI_APP_DEFAULT_ISS",
    "BHI_APP_SESSION_DB_URL",
    "BHI_STATE_URL",
)
DEMO_FORBIDDEN_ENV_PREFIX = "BHI_NOTIFY_"


def demo_conflicts(environ: Mapping[str, str]) -> list[str]:
    """The names (never the values) of set variables the demo must not run with. Upper-cased:
    pydantic-settings reads ``BHI_APP_*`` case-insensitively."""
    names = {name.upper() for name, value in environ.items() if value}
    return sorted(
        name
        for name in names
        if name in DEMO_FORBIDDEN_ENV or name.startswith(DEMO_FORBIDDEN_ENV_PREFIX)
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
