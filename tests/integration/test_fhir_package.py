"""The bhi-fhir FHIR package (profiles/bhi.fhir.tgz, built from profiles/fsh) on the real HAPI:
its StructureDefinitions, CodeSystems and ValueSets are loaded into the server, then every kind
of resource bhi-fhir writes is ``$validate``d as written, without naming a profile: each claims
its own bhi-fhir profile in ``meta.profile`` (the one ``profile_for`` expects by type and code)
and HAPI validates against the claim, so a missing or wrong claim fails:

* the whole ``apply`` output of the bundled clinic (examples/clinic, with the staff survey
  Tasks): CarePlans, each kind of hand-off Task, the crisis ServiceRequests;
* a sync's writes on a seeded clinic: those, the screening Observations (items, totals,
  panels) and every Provenance;
* ``bill``'s billing Encounters and their Provenances (examples/clinic, dry run);
* the app's own writes (demo mode): a care-management time entry, a consent, their Provenances.

What fails: an issue of severity error or fatal; an unknown extension (HAPI reports it as
information); any warning except two kinds, counted apart: "CodeSystem is unknown" for the
external terminologies in ``EXTERNAL_SYSTEMS`` (LOINC, SNOMED CT, CPT, HCPCS, ICD-10-CM and US
Core's careplan-category, whose content HAPI does not have here; their codes are the public
ones, cited where bhi-fhir uses them), and FHIR's best-practice recommendations (not
conformance rules): dom-6, that a resource carry a narrative (Observations, Provenances and the
package's own definitions have none; bhi-fhir writes one where a person reads the resource:
CarePlan, Task, ServiceRequest, billing Encounter), and that an Observation name a performer (a
screening Observation is derived from the patient's own answers, derivedFrom the response);
and the note that a UCUM annotation such as ``{score}`` (the unit of a screening total) is
ignored when units are compared. An unknown profile is an error; an unknown code of bhi-fhir's
own systems is one too (the package defines them). Counts by severity go to
test-artifacts/fhir-package-validation.json.
"""

from __future__ import annotations

import asyncio
import json
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.billing import time_entry
from bhi_fhir.cli import app as cli
from bhi_fhir.codes import (
    BHI_ACTIVITY,
    BHI_BASE,
    CAREPLAN_CATEGORY_US_CORE,
    CPT,
    HCPCS,
    ICD10CM,
    LOINC,
    SNOMED,
    US_CORE_CATEGORY,
)
from bhi_fhir.fhir import FhirClient
from bhi_fhir.paths import examples_dir, profiles_dir
from bhi_fhir.sync import run_sync
from tests.fhir_package.test_profile_claims import app_writes as app_writes_in_demo
from tests.integration.conftest import CASE_SYSTEM, RunTag
from tests.integration.test_sync import SEEDED_TYPES, WRITTEN_TYPES, config, seed_clinic
from tests.sync.clinic import delete_tagged

pytestmark = pytest.mark.integration

PACKAGE = profiles_dir() / "bhi.fhir.tgz"
PROFILE = f"{BHI_BASE}/StructureDefinition/"
PLAN = examples_dir() / "practice-plan.toml"
TODAY = "2026-11-26"  # the bundled clinic's today
CONFORMANCE = ("StructureDefinition", "CodeSystem", "ValueSet")
# External terminologies whose codes HAPI cannot check here (no content loaded, no terminology
# server): their "CodeSystem is unknown" warning is accepted, nothing else is.
EXTERNAL_SYSTEMS = frozenset({LOINC, SNOMED, CPT, HCPCS, ICD10CM, CAREPLAN_CATEGORY_US_CORE,
                              US_CORE_CATEGORY})
_UNKNOWN_SYSTEM = re.compile(r"CodeSystem is unknown and can't be validated: (\S+)")
REPORT = Path("test-artifacts") / "fhir-package-validation.json"
_results: dict[str, Counter[str]] = {}


def package_resources() -> list[dict[str, Any]]:
    """The resources of the installable package (what an EHR team loads), not the sources."""
    with tarfile.open(PACKAGE) as tar:
        return [
            json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.name.endswith(".json")
            and member.name.rsplit("/", 1)[-1] not in ("package.json", ".index.json")
        ]


async def _put_conformance(base: str, run_tag: RunTag) -> list[dict[str, Any]]:
    resources = package_resources()
    async with FhirClient(base, max_retries=2, backoff_max=2) as client:
        for resource in resources:
            if resource["resourceType"] in CONFORMANCE:
                await client.update(run_tag.tag(dict(resource)))
    return resources


@pytest.fixture(scope="module")
def loaded(fhir_base_url: str, run_tag: RunTag) -> list[dict[str, Any]]:
    """The package's conformance resources PUT with their own ids (run-tagged: cleaned up)."""
    return asyncio.run(_put_conformance(fhir_base_url, run_tag))


def profile_for(resource: dict[str, Any]) -> str:
    """The bhi-fhir profile a written resource must conform to (by type and code)."""
    kind = resource["resourceType"]
    concepts = [resource.get("code"), *resource.get("type", [])]
    codes = [c.get("code") for cc in concepts if isinstance(cc, dict)
             for c in cc.get("coding", []) if c.get("system") == BHI_ACTIVITY]
    if kind == "CarePlan":
        return PROFILE + "bhi-careplan"
    if kind == "Task":
        return PROFILE + f"bhi-task-{codes[0]}"
    if kind == "ServiceRequest":
        return PROFILE + {"suicide-risk-assessment": "bhi-suicide-risk-assessment",
                          "crisis-referral": "bhi-crisis-referral"}[codes[0]]
    if kind == "Observation":
        if "hasMember" in resource:
            return PROFILE + "bhi-screening-panel"
        return PROFILE + ("bhi-screening-total" if "valueQuantity" in resource
                          else "bhi-screening-item")
    if kind == "Encounter":
        return PROFILE + ("bhi-care-management-contact" if "care-management-contact" in codes
                          else "bhi-billing-encounter")
    return PROFILE + {"Consent": "bhi-consent", "Provenance": "bhi-provenance"}[kind]


async def validate(fhir: FhirClient, resource: dict[str, Any], profile: str | None) -> list[dict]:
    outcome = await fhir.validate(resource, profile)
    assert outcome.get("resourceType") == "OperationOutcome", outcome
    return list(outcome.get("issue", []))


def problems(issues: list[dict[str, Any]], counts: Counter[str]) -> list[str]:
    """The issues that fail (see the module docstring); counts every issue by severity."""
    out = []
    for issue in issues:
        severity, text = issue["severity"], issue.get("diagnostics", "")
        if severity == "information" and text.startswith("No issues detected"):
            continue
        counts[severity] += 1
        unknown = _UNKNOWN_SYSTEM.search(text)
        if severity in ("fatal", "error"):
            out.append(f"{severity}: {text} at {issue.get('expression')}")
        elif severity == "warning" and unknown and unknown[1] in EXTERNAL_SYSTEMS:
            counts["warning: external code system"] += 1
        elif severity == "warning" and text.startswith("UCUM Codes that contain human readable"):
            counts["warning: UCUM annotation {score}"] += 1
        elif severity == "warning" and "Best Practice Recommendation" in text:
            counts["warning: best practice (narrative, Observation.performer)"] += 1
        elif severity == "warning" or "Unknown extension" in text:
            out.append(f"{severity}: {text} at {issue.get('expression')}")
    return out


async def assert_conform(fhir: FhirClient, label: str, resources: list[dict[str, Any]]) -> None:
    """Every resource claims its profile in meta.profile and is valid against that claim
    (``$validate`` without a profile parameter: HAPI applies meta.profile)."""
    counts: Counter[str] = Counter()
    failures = []
    for resource in resources:
        profile = profile_for(resource)
        claimed = resource.get("meta", {}).get("profile")
        assert claimed == [profile], f"{resource['resourceType']} claims {claimed}, not {profile}"
        counts[f"resources: {resource['resourceType']}"] += 1
        counts["resources"] += 1
        found = problems(await validate(fhir, resource, None), counts)
        failures += [f"{resource['resourceType']} ({profile}): {p}" for p in found]
    _results[label] = counts
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(_results, indent=2, sort_keys=True) + "\n")
    assert not failures, f"{len(failures)} problems, first: " + "\n".join(failures[:10])


async def test_the_package_is_valid_r4(fhir: FhirClient, loaded: list[dict[str, Any]]) -> None:
    """Each resource of the package against base R4 (none of them claims a profile)."""
    kinds = Counter(r["resourceType"] for r in loaded)
    assert kinds["StructureDefinition"] >= 30 and kinds["CodeSystem"] >= 4
    assert kinds["CapabilityStatement"] == 2 and kinds["ImplementationGuide"] == 1
    counts: Counter[str] = Counter()
    failures = []
    for resource in loaded:
        if resource.get("type") == "Extension":
            # HAPI takes 5-13 s to check each extension definition (all nine: a minute and a
            # half); SUSHI checked them when it compiled them, and the outputs below carry
            # contact-mode, bhi-program and billed-units through HAPI's validator.
            continue
        counts["resources"] += 1
        failures += [f"{resource['resourceType']}/{resource['id']}: {p}"
                     for p in problems(await validate(fhir, resource, None), counts)]
    _results["package"] = counts
    assert not failures, "\n".join(failures[:10])


@pytest.fixture
def apply_output(tmp_path: Path) -> list[dict[str, Any]]:
    """The resources of the bundled clinic's ``apply`` transaction Bundle, with the staff
    workflow survey Tasks."""
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(cli, ["apply", str(examples_dir() / "clinic"), "--plan",
                                      str(PLAN), "--today", TODAY, "--out", str(out),
                                      "--format", "json", "--staff-feedback"])
    assert result.exit_code == 0, result.output
    return [e["resource"] for e in json.loads(out.read_text())["entry"]]


async def test_a_wrong_profile_and_an_unknown_code_fail(
    fhir: FhirClient, loaded: list[dict[str, Any]], apply_output: list[dict[str, Any]]
) -> None:
    """The profiles are applied, not skipped: an engage Task is not a consent Task (named as
    a parameter or claimed in meta.profile), a code the bhi-activity CodeSystem does not
    define is an error, an unknown extension fails."""
    engage = next(r for r in apply_output
                  if r["resourceType"] == "Task" and profile_for(r).endswith("-engage"))
    assert problems(await validate(fhir, engage, PROFILE + "bhi-task-consent"), Counter())
    claims_consent = {**engage, "meta": {"profile": [PROFILE + "bhi-task-consent"]}}
    assert problems(await validate(fhir, claims_consent, None), Counter())
    unknown = json.loads(json.dumps(engage))
    unknown["code"]["coding"][0]["code"] = "not-a-bhi-activity"
    found = problems(await validate(fhir, unknown, PROFILE + "bhi-task"), Counter())
    assert any("not-a-bhi-activity" in p for p in found), found
    missing = json.loads(json.dumps(engage))
    missing["extension"] = [{"url": f"{BHI_BASE}/StructureDefinition/nowhere", "valueString": "x"}]
    assert problems(await validate(fhir, missing, PROFILE + "bhi-task-engage"), Counter())


async def test_the_clinic_apply_output_conforms(
    fhir: FhirClient, loaded: list[dict[str, Any]], apply_output: list[dict[str, Any]]
) -> None:
    kinds = Counter(r["resourceType"] for r in apply_output)
    assert kinds["CarePlan"] and kinds["Task"] and kinds["ServiceRequest"], kinds
    await assert_conform(fhir, "apply", apply_output)


@pytest.fixture
def _delete_case(fhir_base_url: str, case_id: str) -> Iterator[None]:
    yield
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                  ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


@pytest.mark.usefixtures("_delete_case")
async def test_a_syncs_writes_conform(
    fhir: FhirClient, loaded: list[dict[str, Any]], fhir_base_url: str, run_tag: RunTag,
    case_id: str, tmp_path: Path,
) -> None:
    """What the sync wrote: the targets of its Provenances (the seeded EHR records are not
    bhi-fhir's) and the Provenances themselves."""
    seed_clinic(fhir_base_url, run_tag, case_id, 26)
    report = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "state.db"))
    assert report.status == "ok", report.to_text()
    written = {}
    for kind in WRITTEN_TYPES:
        async for resource in fhir.search(kind, {"_tag": f"{CASE_SYSTEM}|{case_id}",
                                                 "_count": "500"}):
            written[f"{kind}/{resource['id']}"] = resource
    provenances = [r for r in written.values() if r["resourceType"] == "Provenance"]
    targets = {t["reference"].split("/_history/")[0]
               for p in provenances for t in p["target"]}
    resources = [written[t] for t in sorted(targets)] + provenances
    kinds = Counter(r["resourceType"] for r in resources)
    assert {"CarePlan", "Task", "ServiceRequest", "Observation", "Provenance"} <= set(kinds), kinds
    await assert_conform(fhir, "sync", [_without_server_meta(r) for r in resources])


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as written: the server's versionId/lastUpdated and the tests' tags off."""
    out = dict(resource)
    meta = {k: v for k, v in out.pop("meta", {}).items() if k in ("profile", "tag")}
    meta["tag"] = [t for t in meta.get("tag", []) if "test-" not in t.get("system", "")]
    if not meta["tag"]:
        del meta["tag"]
    if meta:
        out["meta"] = meta
    return out


@pytest.fixture
def bill_output(tmp_path: Path) -> list[dict[str, Any]]:
    """``bill``'s transaction for the bundled clinic's October (dry run, from the files)."""
    out = tmp_path / "bill.json"
    result = CliRunner().invoke(cli, ["bill", "--month", "2026-10", "--input",
                                      str(examples_dir() / "clinic"), "--plan", str(PLAN),
                                      "--dry-run", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [e["resource"] for e in json.loads(out.read_text())["entry"]]


async def test_the_billing_encounters_conform(
    fhir: FhirClient, loaded: list[dict[str, Any]], bill_output: list[dict[str, Any]]
) -> None:
    assert Counter(r["resourceType"] for r in bill_output)["Encounter"] > 0
    await assert_conform(fhir, "bill", bill_output)


@pytest.fixture
def app_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The app's writes in demo mode (a time entry, a consent, their Provenances), as the
    unit tier's profile-claims test records them, without the demo store's server meta."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return [_without_server_meta(r) for r in app_writes_in_demo(tmp_path)]


async def test_the_apps_writes_conform(
    fhir: FhirClient, loaded: list[dict[str, Any]], app_writes: list[dict[str, Any]]
) -> None:
    kinds = Counter(r["resourceType"] for r in app_writes)
    assert kinds["Encounter"] == 1 and kinds["Consent"] == 1 and kinds["Provenance"] >= 2, kinds
    await assert_conform(fhir, "app", app_writes)


async def test_a_time_entry_built_by_the_billing_module_conforms(
    fhir: FhirClient, loaded: list[dict[str, Any]]
) -> None:
    """The representation the app and the tests share (bhi_fhir.billing.time_entry), in each
    mode, with and without a program."""
    entries = [
        time_entry(id=f"t{n}", patient="Patient/p1", clinician="Practitioner/bhcm-garcia",
                   start=datetime(2026, 11, 20, 15, tzinfo=UTC),
                   end=datetime(2026, 11, 20, 15, 25, tzinfo=UTC), mode=mode, program=program,
                   identifier_system="https://bhi-fhir.dev/fhir/identifier",
                   identifier_value=f"time:{n}")
        for n, (mode, program) in enumerate((("phone", "cocm"), ("in-person", None),
                                             ("video", "bhi")))
    ]
    await assert_conform(fhir, "time-entry", entries)
