"""Everything the engine writes is R4: fhir.resources R4B validates it and the SMART client's
strict R4 models (fhirclient.models) parse it."""

from __future__ import annotations

import importlib
from datetime import date
from typing import Any

import pytest

from bhi_fhir.workflow import to_transaction_bundle, validate_resource
from bhi_fhir.workflow.pipeline import run_apply

from .helpers import ROOT, plan


@pytest.fixture(scope="module")
def clinic_bundle() -> dict[str, Any]:
    report = run_apply([ROOT / "examples" / "clinic"], plan(), date(2026, 11, 26))
    assert report.errors == []
    return to_transaction_bundle(report.plans)


def _fhirclient_class(kind: str) -> Any:
    module = importlib.import_module(f"fhirclient.models.{kind.lower()}")
    return getattr(module, kind)


def test_clinic_exercises_every_rule(clinic_bundle: dict[str, Any]) -> None:
    rules = {e["resource"]["identifier"][0]["value"].split(":")[0].split(".")[0]
             for e in clinic_bundle["entry"]}  # fmt: skip
    assert rules == {
        "engage", "consent", "enroll", "crisis-assessment", "crisis-referral", "outreach",
        "psychiatric-review", "relapse-prevention", "phq9-followup", "brief-intervention",
        "patient-feedback",  # practice plan [feedback]: enrollment + 8 weeks
    }  # fmt: skip


def test_every_resource_validates_with_r4b(clinic_bundle: dict[str, Any]) -> None:
    for entry in clinic_bundle["entry"]:
        validate_resource(entry["resource"])


def test_every_resource_parses_with_fhirclient_strict(clinic_bundle: dict[str, Any]) -> None:
    for entry in clinic_bundle["entry"]:
        resource = entry["resource"]
        _fhirclient_class(resource["resourceType"])(resource, strict=True)


def test_bundle_parses_with_fhirclient_strict(clinic_bundle: dict[str, Any]) -> None:
    from fhirclient.models.bundle import Bundle

    Bundle(clinic_bundle, strict=True)


def test_careplans_meet_us_core(clinic_bundle: dict[str, Any]) -> None:
    # US Core CarePlan: text, status, intent, category assess-plan, subject = Patient;
    # categories from the FHIR care-plan-category value set.
    plans = [e["resource"] for e in clinic_bundle["entry"]
             if e["resource"]["resourceType"] == "CarePlan"]  # fmt: skip
    assert plans
    for cp in plans:
        assert cp["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        assert cp["status"] and cp["intent"]
        codes = {(c["system"], c["code"]) for cat in cp["category"] for c in cat["coding"]}
        assert ("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan") in codes
        assert ("http://snomed.info/sct", "718347000") in codes
        assert cp["subject"]["reference"].startswith("Patient/")
