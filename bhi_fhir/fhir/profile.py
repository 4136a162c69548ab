"""What one FHIR server can do for the BHI workflow, read from what it says about itself.

Server quirks live here and nowhere else (style lesson 5): the sync asks the profile whether
to write a transaction or a batch, which resource writes to skip, whether conditional
create can deduplicate re-runs. Sources: ``/metadata`` (CapabilityStatement) and, when the
server has one, ``.well-known/smart-configuration`` (a 404 just means "no SMART").

The workflow can run only if it can *find* work — search on QuestionnaireResponse — and
*write* it somehow: a transaction, a batch, or plain create on at least one target type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bhi_fhir.fhir.client import FhirClient
from bhi_fhir.fhir.errors import BadRequest, InvalidResponse, NotFound
from bhi_fhir.fhir.smart_config import OAUTH_URIS as OAUTH_URIS  # re-exported
from bhi_fhir.fhir.smart_config import SmartInfo as SmartInfo  # re-exported
from bhi_fhir.fhir.smart_config import from_capability_statement, from_well_known

# Resource types the workflow writes (CarePlan, hand-off Tasks, referrals, billing
# Encounters, screening Observations, Provenance for every write) and the ones it reads.
WRITE_TYPES = ("Task", "ServiceRequest", "CarePlan", "Encounter", "Observation", "Provenance")
READ_TYPES = ("Patient", "QuestionnaireResponse")

CheckStatus = Literal["ok", "warn", "skip", "fail"]


@dataclass(frozen=True)
class ResourceSupport:
    """One ``rest.resource`` entry of the CapabilityStatement, reduced to what we use."""

    type: str
    interactions: frozenset[str]
    conditional_create: bool = False
    conditional_update: bool = False
    versioning: str | None = None
    update_with_version_check: bool | None = None  # DSTU2 name, still seen in the wild
    search_params: frozenset[str] = frozenset()

    @classmethod
    def from_capability(cls, entry: Mapping[str, Any]) -> ResourceSupport:
        return cls(
            type=str(entry.get("type", "")),
            interactions=_codes(entry.get("interaction")),
            conditional_create=entry.get("conditionalCreate") is True,
            conditional_update=entry.get("conditionalUpdate") is True,
            versioning=entry.get("versioning"),
            update_with_version_check=entry.get("updateWithVersionCheck"),
            search_params=frozenset(
                str(p["name"])
                for p in entry.get("searchParam") or []
                if isinstance(p, dict) and p.get("name")
            ),
        )


@dataclass(frozen=True)
class Check:
    """One line of the readiness report."""

    name: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]
    can_run: bool

    @property
    def summary(self) -> str:
        if self.can_run:
            skipped = [c.name for c in self.checks if c.status == "skip"]
            return "ready" + (f" (skipping: {', '.join(skipped)})" if skipped else "")
        failed = [c.detail for c in self.checks if c.status == "fail"]
        return "cannot run the BHI workflow: " + "; ".join(failed)


@dataclass(frozen=True)
class ServerProfile:
    base_url: str
    fhir_version: str | None
    software: str | None
    resources: Mapping[str, ResourceSupport] = field(default_factory=dict)
    system_interactions: frozenset[str] = frozenset()
    smart: SmartInfo | None = None

    # --- building -----------------------------------------------------------------------------

    @classmethod
    async def fetch(cls, client: FhirClient) -> ServerProfile:
        """Ask the server (two requests); SMART discovery failing is not an error."""
        capability = await client.capabilities()
        try:
            smart_config: Mapping[str, Any] | None = await client.smart_configuration()
        except (NotFound, BadRequest, InvalidResponse):
            smart_config = None
        return cls.from_documents(client.base_url, capability, smart_config)

    @classmethod
    def from_documents(
        cls,
        base_url: str,
        capability: Mapping[str, Any],
        smart_config: Mapping[str, Any] | None = None,
    ) -> ServerProfile:
        rest = _server_rest(capability)
        resources = {
            support.type: support
            for support in (
                ResourceSupport.from_capability(r)
                for r in rest.get("resource") or []
                if isinstance(r, dict)
            )
            if support.type
        }
        software = capability.get("software") or {}
        name = " ".join(str(x) for x in (software.get("name"), software.get("version")) if x)
        return cls(
            base_url=base_url,
            fhir_version=capability.get("fhirVersion"),
            software=name or None,
            resources=resources,
            system_interactions=_codes(rest.get("interaction")),
            smart=from_well_known(smart_config) or from_capability_statement(capability),
        )

    # --- questions the sync asks --------------------------------------------------------------

    def supports(self, resource_type: str, interaction: str) -> bool:
        support = self.resources.get(resource_type)
        return support is not None and interaction in support.interactions

    @property
    def transaction(self) -> bool:
        return "transaction" in self.system_interactions

    @property
    def batch(self) -> bool:
        return "batch" in self.system_interactions

    def can_write(self, resource_type: str) -> bool:
        return self.supports(resource_type, "create")

    @property
    def writable_types(self) -> tuple[str, ...]:
        return tuple(t for t in WRITE_TYPES if self.can_write(t))

    @property
    def conditional_create(self) -> bool:
        """Every writable target declares ``conditionalCreate`` (so re-runs deduplicate)."""
        writable = self.writable_types
        return bool(writable) and all(self.resources[t].conditional_create for t in writable)

    def versioned_update_for(self, resource_type: str) -> Literal["declared", "assumed", "no"]:
        """If-Match support: declared by ``versioned-update``, assumed for plain updates.

        R4 has no flag for "honours If-Match" beyond ``versioning``; HAPI and most servers
        honour it anyway, so an update-capable type that does not say ``no-version`` is
        assumed to — a stale write then fails loudly (412) rather than silently.
        """
        support = self.resources.get(resource_type)
        if support is None or "update" not in support.interactions:
            return "no"
        if support.versioning == "versioned-update" or support.update_with_version_check:
            return "declared"
        if support.versioning == "no-version" or support.update_with_version_check is False:
            return "no"
        return "assumed"

    @property
    def versioned_update(self) -> bool:
        updatable = [t for t in WRITE_TYPES if self.supports(t, "update")]
        return bool(updatable) and all(self.versioned_update_for(t) != "no" for t in updatable)

    # --- the report ---------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """What works, what will be skipped and why, and whether the workflow can run."""
        checks: list[Check] = []
        version = self.fhir_version or "unknown"
        checks.append(
            Check(
                "FHIR version",
                "ok" if version.startswith("4.0") else "warn",
                f"{version} ({self.software or 'unknown software'})"
                + ("" if version.startswith("4.0") else "; bhi-fhir speaks R4 4.0.1"),
            )
        )
        qr_search = self.supports("QuestionnaireResponse", "search-type")
        checks.append(
            Check(
                "search QuestionnaireResponse",
                "ok" if qr_search else "fail",
                "screenings can be found"
                if qr_search
                else "no search on QuestionnaireResponse: screenings cannot be found",
            )
        )
        patient = [i for i in ("read", "search-type") if self.supports("Patient", i)]
        checks.append(
            Check(
                "read/search Patient",
                "ok" if len(patient) == 2 else "warn",
                "read and search"
                if len(patient) == 2
                else f"only {patient or 'nothing'}: patient details may be missing",
            )
        )
        writable = self.writable_types
        can_write = self.transaction or self.batch or bool(writable)
        if self.transaction:
            checks.append(Check("transaction", "ok", "writes are applied all-or-nothing"))
        else:
            checks.append(
                Check(
                    "transaction",
                    "warn" if can_write else "fail",
                    "not supported: writes go as batch or one by one (not atomic)"
                    if can_write
                    else "no transaction, batch or create: nothing can be written",
                )
            )
        if self.batch:
            checks.append(Check("batch", "ok", "supported"))
        elif self.transaction:  # HAPI serves batch but declares only transaction
            checks.append(Check("batch", "ok", "not declared; not needed (transaction is used)"))
        else:
            checks.append(Check("batch", "skip", "not supported"))
        for resource_type in WRITE_TYPES:
            if self.can_write(resource_type):
                checks.append(Check(f"write {resource_type}", "ok", "create supported"))
            else:
                checks.append(
                    Check(
                        f"write {resource_type}",
                        "skip",
                        f"no create on {resource_type}: those writes will be skipped",
                    )
                )
        checks.append(
            Check(
                "conditional create",
                "ok" if self.conditional_create else "warn",
                "re-runs find existing resources (If-None-Exist)"
                if self.conditional_create
                else "not declared on every written type: re-runs may duplicate",
            )
        )
        checks.append(self._versioned_update_check())
        checks.append(self._smart_check())
        return Readiness(tuple(checks), can_run=qr_search and can_write)

    def _versioned_update_check(self) -> Check:
        modes = {t: self.versioned_update_for(t) for t in WRITE_TYPES if self.supports(t, "update")}
        if not modes:
            return Check("versioned update", "skip", "no updates: plans will not be revised")
        if all(m == "declared" for m in modes.values()):
            return Check("versioned update", "ok", "If-Match declared (versioned-update)")
        if self.versioned_update:
            return Check("versioned update", "ok", "If-Match assumed (not declared)")
        missing = ", ".join(t for t, m in modes.items() if m == "no")
        return Check("versioned update", "warn", f"no version check on {missing}: last write wins")

    def _smart_check(self) -> Check:
        name = "SMART backend services"
        if self.smart is None:
            return Check(
                name, "skip", "not available (no SMART configuration): open or static-token access"
            )
        if self.smart.backend_services:
            return Check(name, "ok", f"available via {self.smart.token_endpoint}")
        return Check(
            name, "warn", "not available: " + "; ".join(self.smart.backend_services_gaps)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the facts, the booleans and the readiness report."""
        readiness = self.readiness()
        return {
            "base_url": self.base_url,
            "fhir_version": self.fhir_version,
            "software": self.software,
            "transaction": self.transaction,
            "batch": self.batch,
            "conditional_create": self.conditional_create,
            "versioned_update": self.versioned_update,
            "writable_types": list(self.writable_types),
            "smart": asdict(self.smart) if self.smart else None,
            "can_run": readiness.can_run,
            "summary": readiness.summary,
            "checks": [asdict(c) for c in readiness.checks],
        }


def _codes(items: Any) -> frozenset[str]:
    return frozenset(str(i["code"]) for i in items or [] if isinstance(i, dict) and i.get("code"))


def _server_rest(capability: Mapping[str, Any]) -> Mapping[str, Any]:
    rests = [r for r in capability.get("rest") or [] if isinstance(r, dict)]
    for rest in rests:
        if rest.get("mode") == "server":
            return rest
    return rests[0] if rests else {}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
