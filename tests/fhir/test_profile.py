"""ServerProfile from canned CapabilityStatements: booleans, readiness, SMART discovery."""

from __future__ import annotations

import httpx
import pytest
import respx

from bhi_fhir.fhir import FhirClient, ServerProfile
from bhi_fhir.fhir.profile import OAUTH_URIS
from tests.fhir.capability import capability_statement
from tests.fhir.conftest import BASE

SMART = {
    "token_endpoint": "https://auth.example/token",
    "authorization_endpoint": "https://auth.example/authorize",
    "grant_types_supported": ["authorization_code", "client_credentials"],
    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    "capabilities": ["launch-ehr", "client-confidential-asymmetric"],
    "code_challenge_methods_supported": ["S256"],
}


def status_of(profile: ServerProfile, name: str) -> str:
    return next(c.status for c in profile.readiness().checks if c.name == name)


def test_full_server() -> None:
    profile = ServerProfile.from_documents(BASE, capability_statement(), SMART)
    assert profile.fhir_version == "4.0.1"
    assert profile.software == "HAPI FHIR Server 8.8.0"
    assert profile.transaction and profile.batch
    assert profile.conditional_create
    assert profile.versioned_update
    assert profile.versioned_update_for("CarePlan") == "declared"
    assert profile.supports("QuestionnaireResponse", "search-type")
    assert "_lastUpdated" in profile.resources["Observation"].search_params
    assert profile.writable_types == (
        "Task",
        "ServiceRequest",
        "CarePlan",
        "Encounter",
        "Observation",
        "Provenance",
    )
    assert profile.smart is not None and profile.smart.backend_services
    readiness = profile.readiness()
    assert readiness.can_run
    assert {c.status for c in readiness.checks} == {"ok"}
    assert readiness.summary == "ready"


def test_no_search_on_questionnaire_response_cannot_run() -> None:
    cap = capability_statement(
        overrides={"QuestionnaireResponse": {"interaction": [{"code": "read"}]}}
    )
    readiness = ServerProfile.from_documents(BASE, cap).readiness()
    assert not readiness.can_run
    assert "screenings cannot be found" in readiness.summary


def test_read_only_server_cannot_run() -> None:
    read_only = {
        t: {"interaction": [{"code": "read"}, {"code": "search-type"}]}
        for t in ("Task", "ServiceRequest", "CarePlan", "Encounter", "Observation", "Provenance")
    }
    cap = capability_statement(system=("search-system",), overrides=read_only)
    profile = ServerProfile.from_documents(BASE, cap)
    readiness = profile.readiness()
    assert not readiness.can_run
    assert status_of(profile, "transaction") == "fail"
    assert status_of(profile, "write Task") == "skip"


def test_missing_write_types_are_skipped_with_reasons() -> None:
    cap = capability_statement(
        types=("Patient", "QuestionnaireResponse", "Task", "CarePlan"), system=("batch",)
    )
    profile = ServerProfile.from_documents(BASE, cap)
    readiness = profile.readiness()
    assert readiness.can_run
    assert not profile.transaction and profile.batch
    assert status_of(profile, "transaction") == "warn"
    skipped = {c.name: c.detail for c in readiness.checks if c.status == "skip"}
    assert "write Provenance" in skipped
    assert "will be skipped" in skipped["write Provenance"]
    assert "write Task" not in skipped
    assert "skipping:" in readiness.summary
    assert status_of(profile, "SMART backend services") == "skip"


def test_versioned_update_assumed_when_not_declared() -> None:
    quiet = {t: {"versioning": "versioned"} for t in ("Task", "CarePlan")}
    profile = ServerProfile.from_documents(BASE, capability_statement(overrides=quiet))
    assert profile.versioned_update_for("Task") == "assumed"
    assert profile.versioned_update
    detail = next(c.detail for c in profile.readiness().checks if c.name == "versioned update")
    assert "assumed" in detail


def test_no_version_is_a_warning() -> None:
    profile = ServerProfile.from_documents(
        BASE, capability_statement(overrides={"Task": {"versioning": "no-version"}})
    )
    assert not profile.versioned_update
    assert status_of(profile, "versioned update") == "warn"


def test_conditional_create_must_cover_every_written_type() -> None:
    profile = ServerProfile.from_documents(
        BASE, capability_statement(overrides={"Provenance": {"conditionalCreate": False}})
    )
    assert not profile.conditional_create
    assert status_of(profile, "conditional create") == "warn"


def test_legacy_oauth_uris_extension() -> None:
    security = {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": "token", "valueUri": "https://auth.example/token"},
                    {"url": "authorize", "valueUri": "https://auth.example/authorize"},
                ],
            }
        ]
    }
    profile = ServerProfile.from_documents(BASE, capability_statement(security=security))
    assert profile.smart is not None
    assert profile.smart.source == "capability-statement"
    assert profile.smart.token_endpoint == "https://auth.example/token"


def test_tolerates_a_sparse_statement() -> None:
    profile = ServerProfile.from_documents(BASE, {"resourceType": "CapabilityStatement"})
    assert profile.fhir_version is None
    assert not profile.readiness().can_run
    assert profile.to_dict()["checks"]


async def test_fetch_tolerates_missing_smart_configuration(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    router.get("/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
    profile = await ServerProfile.fetch(client)
    assert profile.smart is None
    assert profile.readiness().can_run
    assert profile.to_dict()["transaction"] is True


async def test_fetch_reads_smart_configuration(
    client: FhirClient, router: respx.MockRouter
) -> None:
    router.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    router.get("/.well-known/smart-configuration").mock(
        return_value=httpx.Response(200, json=SMART)
    )
    profile = await ServerProfile.fetch(client)
    assert profile.smart is not None
    assert profile.smart.token_endpoint == "https://auth.example/token"


def test_batch_not_declared_is_fine_when_transaction_is() -> None:
    """HAPI 8 declares only transaction (and history-system) at the system level."""
    profile = ServerProfile.from_documents(BASE, capability_statement(system=("transaction",)))
    assert not profile.batch
    assert status_of(profile, "batch") == "ok"
    assert "batch" not in profile.readiness().summary


# SMART App Launch 2.2 backend-services.md / conformance.md: the token endpoint from
# .well-known/smart-configuration, grant type client_credentials, auth method private_key_jwt.
@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        pytest.param({}, "ok", "available via https://auth.example/token", id="all-three"),
        pytest.param(
            {"token_endpoint": None}, "skip", "no SMART configuration", id="no-token-endpoint"
        ),
        pytest.param(
            {"grant_types_supported": ["authorization_code"]},
            "warn",
            "client_credentials not in grant_types_supported",
            id="no-client-credentials",
        ),
        pytest.param(
            {"token_endpoint_auth_methods_supported": ["client_secret_basic"]},
            "warn",
            "private_key_jwt not in token_endpoint_auth_methods_supported",
            id="no-private-key-jwt",
        ),
        pytest.param(
            {"token_endpoint_auth_methods_supported": None},
            "warn",
            "private_key_jwt not in token_endpoint_auth_methods_supported",
            id="auth-methods-not-advertised",
        ),
    ],
)
def test_backend_services_needs_all_three(
    change: dict[str, object], status: str, detail: str
) -> None:
    config = {k: v for k, v in {**SMART, **change}.items() if v is not None}
    profile = ServerProfile.from_documents(BASE, capability_statement(), config)
    check = next(c for c in profile.readiness().checks if c.name == "SMART backend services")
    assert (check.status, detail in check.detail) == (status, True)
    assert profile.readiness().can_run  # open or static-token use still works


def test_oauth_uris_alone_are_not_backend_services() -> None:
    security = {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": "token", "valueUri": "https://auth.example/token"}],
            }
        ]
    }
    cap = capability_statement()
    cap["rest"][0]["security"] = security
    profile = ServerProfile.from_documents(BASE, cap)
    assert profile.smart is not None and not profile.smart.backend_services
    assert status_of(profile, "SMART backend services") == "warn"
