"""Every kind of resource bhi-fhir writes claims, in ``meta.profile``, one profile the FHIR
package (profiles/package) defines for that resource type, and for a code-specific profile
(each hand-off Task kind, each crisis ServiceRequest) the one whose fixed code is the
resource's: a server then validates each write against its own profile
(tests/integration/test_fhir_package.py proves the claims hold on HAPI).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bhi_fhir.billing import time_entry
from bhi_fhir.cli import app as cli
from bhi_fhir.codes import BHI_ACTIVITY
from bhi_fhir.instruments import score_response, screening_observations
from bhi_fhir.paths import examples_dir, profiles_dir
from bhi_fhir.provenance import agent, provenance
from smart_app.config import Settings
from smart_app.main import create_app
from tests.fhir_package.test_package_codes import RESOURCES
from tests.smart_app.conftest import APP_URL
from tests.smart_app.test_security import _clinic

PLAN = examples_dir() / "practice-plan.toml"
TODAY = "2026-11-26"  # the bundled clinic's today

Resource = dict[str, Any]


def _bundle(args: list[str], out: Path) -> list[Resource]:
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    return [e["resource"] for e in json.loads(out.read_text())["entry"]]


def _apply(tmp_path: Path) -> list[Resource]:
    """The protocol's CarePlans, Tasks and ServiceRequests and the feedback Tasks (patient
    and staff) for the bundled clinic."""
    return _bundle(["apply", str(examples_dir() / "clinic"), "--plan", str(PLAN), "--today",
                    TODAY, "--staff-feedback"], tmp_path / "apply.json")


def _bill(tmp_path: Path) -> list[Resource]:
    """The billing Encounters and their Provenances (dry run)."""
    return _bundle(["bill", "--month", "2026-10", "--input", str(examples_dir() / "clinic"),
                    "--plan", str(PLAN), "--dry-run"], tmp_path / "bill.json")


def _observations(_: Path) -> list[Resource]:
    """The sync's screening Observations (items, totals, panels) of every bundled response."""
    lines = (examples_dir() / "clinic" / "QuestionnaireResponse.ndjson").read_text().splitlines()
    out = []
    for line in lines:
        qr = json.loads(line)
        out += screening_observations(score_response(qr), qr)
    return out


def _provenance(_: Path) -> list[Resource]:
    return [provenance(["Task/t1"], key="k", operation="CREATE",
                       recorded="2026-11-26T12:00:00Z",
                       agents=[agent({"reference": "Device/bhi-fhir"})])]


def _time_entry(_: Path) -> list[Resource]:
    return [time_entry(id="t1", patient="Patient/p1", clinician="Practitioner/bhcm-garcia",
                       start=datetime(2026, 11, 20, 15, tzinfo=UTC),
                       end=datetime(2026, 11, 20, 15, 25, tzinfo=UTC), mode="phone",
                       program="cocm", identifier_system="https://bhi-fhir.dev/fhir/identifier",
                       identifier_value="time:1")]


def app_writes(tmp_path: Path) -> list[Resource]:
    """The app's writes in demo mode (the bundled clinic in memory, as tests/smart_app use it):
    a time entry and a consent recorded for one patient, and their Provenances."""
    settings = Settings(  # type: ignore[call-arg]
        demo=True, demo_clinic=_clinic(tmp_path), cookie_secure=False, base_url=APP_URL,
        today=TODAY,
    )
    with TestClient(create_app(settings), base_url=APP_URL) as demo:
        demo.get("/demo", follow_redirects=False)
        page = demo.get("/patient/evil").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        entry = re.search(r'name="entry_id" value="([^"]+)"', page)
        assert csrf and entry
        demo.post("/patient/evil/time", follow_redirects=False, data={
            "csrf_token": csrf[1], "entry_id": entry[1], "minutes": "25", "mode": "phone"})
        demo.post("/patient/evil/consent", follow_redirects=False,
                  data={"csrf_token": csrf[1], "confirm": "yes"})
        store = demo.app.state.demo_source._by_key  # type: ignore[attr-defined]
        # The demo clinic has no Provenance: every one is the app's.
        return [r for (kind, _), r in store.items()
                if kind == "Provenance" or (
                    kind in ("Encounter", "Consent")
                    and r.get("subject", r.get("patient", {})).get("reference")
                    == "Patient/evil")]


def _fixed_codes(profile: Resource) -> list[str]:
    """The bhi-activity code a profile fixes (pattern on code), if any."""
    return [c["code"] for e in profile["differential"]["element"]
            if e["path"].endswith(".code") and "patternCodeableConcept" in e
            for c in e["patternCodeableConcept"]["coding"] if c["system"] == BHI_ACTIVITY]


@pytest.mark.parametrize(("writer", "kinds"), [
    pytest.param(_apply, {"CarePlan", "Task", "ServiceRequest"}, id="apply"),
    pytest.param(_observations, {"Observation"}, id="screening-observations"),
    pytest.param(_provenance, {"Provenance"}, id="provenance"),
    pytest.param(_bill, {"Encounter", "Provenance"}, id="bill"),
    pytest.param(_time_entry, {"Encounter"}, id="time-entry"),
    pytest.param(app_writes, {"Encounter", "Consent", "Provenance"}, id="app"),
])  # fmt: skip
def test_every_written_resource_claims_a_profile_of_the_package(
    writer: Callable[[Path], list[Resource]], kinds: set[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    resources = writer(tmp_path)
    assert {r["resourceType"] for r in resources} == kinds
    wrong = []
    for resource in resources:
        claimed = (resource.get("meta") or {}).get("profile") or []
        profile = RESOURCES.get(claimed[0]) if len(claimed) == 1 else None
        codes = [c.get("code") for c in (resource.get("code") or {}).get("coding", [])
                 if c.get("system") == BHI_ACTIVITY]
        if (profile is None or profile["resourceType"] != "StructureDefinition"
                or profile["type"] != resource["resourceType"]
                or not set(_fixed_codes(profile)) <= set(codes)):
            wrong.append(f"{resource['resourceType']} {codes}: {claimed}")
    assert wrong == []


def test_each_hand_off_task_kind_claims_its_own_profile(tmp_path: Path) -> None:
    """A code-specific profile per Task kind, not the generic bhi-task."""
    claims = Counter(r["meta"]["profile"][0].rsplit("/", 1)[1] for r in _apply(tmp_path)
                     if r["resourceType"] == "Task")
    assert "bhi-task" not in claims
    assert {"bhi-task-engage", "bhi-task-patient-feedback", "bhi-task-staff-feedback"} <= set(
        claims), claims


@pytest.mark.parametrize("path", [
    pytest.param(p, id=p.stem)
    for p in sorted((profiles_dir() / "activitydefinitions").glob("*.json"))
])  # fmt: skip
def test_every_activity_definition_names_its_profile(path: Path) -> None:
    """ActivityDefinition.profile is what the engine claims for the resources it builds from
    it, so one firing nowhere in the bundled clinic is checked too."""
    definition = json.loads(path.read_text())
    profile = RESOURCES[definition["profile"]]
    codes = [c["code"] for c in (definition.get("code") or {}).get("coding", [])
             if c["system"] == BHI_ACTIVITY]
    assert profile["type"] == definition["kind"]
    assert set(_fixed_codes(profile)) <= set(codes)
