"""Sync planning, pure: one entry builder for workflow and sync, Provenance keys, screening sets."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sync import DEFAULT_AGENT, PatientContext, plan_patient
from bhi_fhir.sync.planning import SyncWrite, provenance_for
from bhi_fhir.sync.runner import default_plan_path, load_protocol_files
from bhi_fhir.workflow.plan import PlannedWrite, identifier_condition
from tests.instruments.screen_records import derived_observations, phq9_response, synthea_screen

TODAY = date(2026, 11, 26)


def _context() -> PatientContext:
    qr = json.loads((examples_dir() / "screening" / "phq9-moderate-item9.json").read_text())
    qr["subject"] = {"reference": "Patient/p1"}
    qr["meta"] = {"versionId": "2"}
    qr["authored"] = "2026-11-26"  # today: the crisis protocol acts on a fresh item 9
    return PatientContext("Patient/p1", {"resourceType": "Patient", "id": "p1"}, [qr])


def _plan(context: PatientContext) -> Any:
    return plan_patient(context, protocol=load_protocol_files(),
                        practice_plan=load_practice_plan(default_plan_path()), today=TODAY,
                        recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)


def test_sync_and_workflow_build_the_same_entries() -> None:
    resource = {"resourceType": "Task", "id": "t1"}
    for method, if_match in (("create", None), ("update", 'W/"3"')):
        planned = PlannedWrite("engage", "engage", "engage:x", method, resource, "why",  # type: ignore[arg-type]
                               (), "urn:uuid:1", if_match)
        synced = SyncWrite("engage", "engage:x", method, resource, "urn:uuid:1", "why",  # type: ignore[arg-type]
                           identifier_condition("engage:x") if method == "create" else None,
                           if_match)
        assert planned.bundle_entry() == synced.entry()
    assert identifier_condition("a b") == "identifier=" + BHI_IDENTIFIER + "%7Ca%20b"


def test_positive_phq9_with_item9_plans_crisis_work_each_with_a_provenance() -> None:
    plan = _plan(_context())
    rules = {w.rule for w in plan.writes}
    assert "screening" in rules and any(r.startswith("crisis") for r in rules)
    workflow = [w for w in plan.writes if w.rule != "screening"]
    assert len(plan.provenance) == len(workflow) + 1  # + one for the screening set
    for write in plan.writes:
        assert write.entry()["request"]["ifNoneExist"].startswith("identifier=")
    for prov in plan.provenance:
        assert prov.if_none_exist and prov.if_none_exist.startswith("_tag=")
        entity = prov.resource.get("entity") or []
        assert all("QuestionnaireResponse/" in e["what"]["reference"] for e in entity)


def test_screening_set_on_file_is_unchanged() -> None:
    context = _context()
    first = _plan(context)
    context.observation_ids = {w.identifier for w in first.writes if w.rule == "screening"}
    again = _plan(context)
    assert not [w for w in again.writes if w.rule == "screening"]
    assert any(c.rule == "screening" and c.change == "unchanged" for c in again.changes)


def test_provenance_key_gives_a_stable_full_url_and_tag() -> None:
    a = provenance_for(["urn:uuid:1"], key="provenance:x", rule="r", reason="why",
                       operation="CREATE", sources=["QuestionnaireResponse/q/_history/1"] * 2,
                       agent=DEFAULT_AGENT, recorded="2026-11-26T12:00:00Z")
    b = provenance_for(["urn:uuid:1"], key="provenance:x", rule="r", reason="why",
                       operation="CREATE", sources=[], agent=DEFAULT_AGENT, recorded="later")
    assert a.full_url == b.full_url
    assert a.resource["meta"]["tag"] == [{"system": BHI_IDENTIFIER, "code": "provenance:x"}]
    assert len(a.resource["entity"]) == 1 and "entity" not in b.resource


# A screen however it is stored, counted once: Synthea 3.3
# (Synthea 3.3 report + total, no items), US Core screening (our own Observations derivedFrom the
# response), (PHQ-9 15 positive at cut point 10, Kroenke 2001).
_WHEN = "2026-11-20T10:00:00Z"


@pytest.mark.parametrize(("stored", "source", "screening_writes"), [
    pytest.param("response", "QuestionnaireResponse/qr-1", True, id="response-only"),
    pytest.param("synthea", "DiagnosticReport/dr-1", False, id="synthea-only-Synthea-3-3"),
    pytest.param("both", "QuestionnaireResponse/qr-1", True, id="response-and-synthea"),
    pytest.param("own", "QuestionnaireResponse/qr-1", False, id="response-and-own-US-Core"),
])
def test_a_screen_stored_as_observations_is_one_screen(
        stored: str, source: str, screening_writes: bool) -> None:
    qr = phq9_response("p1", _WHEN)
    responses = [qr] if stored != "synthea" else []
    resources = {"response": [], "synthea": synthea_screen("p1", _WHEN),
                 "both": synthea_screen("p1", _WHEN), "own": derived_observations(qr)}[stored]
    context = PatientContext("Patient/p1", {"resourceType": "Patient", "id": "p1"}, responses,
                             list(resources))
    if stored == "own":  # what the server's identifier search says is on file
        context.observation_ids = {o["identifier"][0]["value"] for o in resources}
    plan = _plan(context)
    assert plan.errors == []
    (engage,) = [w for w in plan.writes if w.rule == "engage"]
    provenance = next(p for p in plan.provenance if p.rule == "engage")
    assert [e["what"]["reference"].split("/_history/")[0]
            for e in provenance.resource["entity"]] == [source]
    # A screen read from Observations already is one: no derived Observations for it.
    assert any(w.rule == "screening" for w in plan.writes) is screening_writes
    assert ("suicide item not recorded" in engage.reason) is (stored == "synthea")
