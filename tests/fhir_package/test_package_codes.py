"""The FHIR package (profiles/package, built from profiles/fsh) defines every code, extension
and profile the Python code writes in bhi-fhir's own namespace, with the display it writes:
a code added in the code but not in the FSH sources fails here, before HAPI's validation tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from bhi_fhir.billing.codes import Program
from bhi_fhir.billing.representation import (
    BILLED_UNITS_EXT,
    BILLING_ENCOUNTER_PROFILE,
    CONTACT_MODE_CODES,
    CONTACT_MODE_EXT,
    PARTICIPATION_MODE,
    PROGRAM_DISPLAY,
    PROGRAM_EXT,
    PROGRAM_SYSTEM,
    TIME_ENTRY_PROFILE,
)
from bhi_fhir.codes import BHI_ACTIVITY, CARE_MANAGEMENT_CONTACT
from bhi_fhir.instruments.observations import SEVERITY_SYSTEM
from bhi_fhir.instruments.registry import BY_ID
from bhi_fhir.measures.report import CARE_GAP_REASON
from bhi_fhir.paths import profiles_dir
from bhi_fhir.sync.planning import BHI_RULE, SCREENING_RULE
from bhi_fhir.workflow.feedback import PATIENT_RULE, STAFF_RULE
from bhi_fhir.workflow.protocol import (
    EXT_FOR_EACH,
    EXT_IDENTIFIER_KEY,
    EXT_REASON,
    EXT_SOURCES,
    Action,
    default_protocol,
)
from smart_app.writes import APP_RULE

PACKAGE = profiles_dir() / "package"


def _resources() -> dict[str, dict[str, Any]]:
    """The package's resources by canonical URL."""
    out = {}
    for path in PACKAGE.glob("*.json"):
        resource = json.loads(path.read_text())
        if "url" in resource and "resourceType" in resource:
            out[resource["url"]] = resource
    return out


RESOURCES = _resources()


def _concepts(system: str) -> dict[str, str]:
    return {c["code"]: c.get("display", "") for c in RESOURCES[system]["concept"]}


def _actions(actions: tuple[Action, ...]) -> Iterator[Action]:
    for action in actions:
        yield action
        yield from _actions(action.children)


def _activity_codes() -> dict[str, str]:
    """What bhi-fhir writes in bhi-activity: the ActivityDefinitions' codes (Tasks,
    ServiceRequests), the time entry's type, the feedback Tasks' codes, and the screening
    items, panels and totals without a LOINC code (bhi_fhir.instruments.observations)."""
    codes = {CARE_MANAGEMENT_CONTACT: "Care-management contact",
             PATIENT_RULE: "Patient experience survey", STAFF_RULE: "Staff workflow survey"}
    for path in sorted((profiles_dir() / "activitydefinitions").glob("*.json")):
        for coding in (json.loads(path.read_text()).get("code") or {}).get("coding", []):
            if coding["system"] == BHI_ACTIVITY:
                codes[coding["code"]] = coding["display"]
    for spec in BY_ID.values():
        for item in spec.items:
            if not item.key[:1].isdigit():
                codes[item.key] = item.text
        if not spec.panel_code:
            codes[f"{spec.id}-panel"] = spec.title
        if not spec.total_code:
            codes[f"{spec.id}-total"] = f"{spec.title} total score"
    return codes


def _severity_codes() -> dict[str, str]:
    """Every band name, and the C-SSRS screener's triage levels (bhi_fhir.instruments.cssrs
    risk_level); displays as observations._severity writes them."""
    names = {band.name for spec in BY_ID.values() for band in spec.bands}
    names |= {"high", "moderate", "low"}
    return {n: n.replace("-", " ").capitalize() for n in names}


def _rule_codes() -> dict[str, str]:
    """Provenance.reason codes: every protocol action id, the screening Observations' rule,
    the feedback rules and the app's."""
    codes = {a.id: a.title for a in _actions(default_protocol().actions)}
    return codes | {SCREENING_RULE: "", PATIENT_RULE: "", STAFF_RULE: "", APP_RULE: ""}


FEEDBACK_ANSWER = "https://bhi-fhir.dev/fhir/CodeSystem/feedback-answer"


def _feedback_answers() -> dict[str, str]:
    """The answer options of the feedback surveys (profiles/questionnaires/feedback): what the
    app writes in their QuestionnaireResponses."""
    codes: dict[str, str] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            for option in item.get("answerOption") or []:
                coding = option.get("valueCoding") or {}
                if coding.get("system") == FEEDBACK_ANSWER:
                    codes[coding["code"]] = coding["display"]
            walk(item.get("item") or [])

    for path in sorted((profiles_dir() / "questionnaires" / "feedback").glob("*.json")):
        walk(json.loads(path.read_text())["item"])
    assert codes, "the feedback surveys have answer options"
    return codes


@pytest.mark.parametrize(("system", "written"), [
    pytest.param(BHI_ACTIVITY, _activity_codes(), id="bhi-activity"),
    pytest.param(SEVERITY_SYSTEM, _severity_codes(), id="screening-severity"),
    pytest.param(BHI_RULE, _rule_codes(), id="bhi-rule"),
    pytest.param(PROGRAM_SYSTEM, {p: PROGRAM_DISPLAY[p] for p in get_args(Program)},
                 id="bhi-program"),
    pytest.param(FEEDBACK_ANSWER, _feedback_answers(), id="feedback-answer"),
])  # fmt: skip
def test_every_code_written_is_defined_with_its_display(system: str, written: dict[str, str]):
    defined = _concepts(system)
    assert sorted(set(written) - set(defined)) == []
    wrong = {c: (d, defined[c]) for c, d in written.items() if d and defined[c] != d}
    assert wrong == {}


def test_the_contact_modes_value_set_holds_the_modes_written() -> None:
    value_set = RESOURCES["https://bhi-fhir.dev/fhir/ValueSet/contact-mode"]
    (include,) = value_set["compose"]["include"]
    assert include["system"] == PARTICIPATION_MODE
    assert sorted(c["code"] for c in include["concept"]) == sorted(CONTACT_MODE_CODES.values())


@pytest.mark.parametrize("url", [
    pytest.param(CONTACT_MODE_EXT, id="contact-mode"),
    pytest.param(PROGRAM_EXT, id="bhi-program"),
    pytest.param(BILLED_UNITS_EXT, id="billed-units"),
    pytest.param(CARE_GAP_REASON, id="care-gap-reason"),
    pytest.param(EXT_FOR_EACH, id="for-each"),
    pytest.param(EXT_IDENTIFIER_KEY, id="identifier-key"),
    pytest.param(EXT_SOURCES, id="sources"),
    pytest.param(EXT_REASON, id="reason"),
    pytest.param(TIME_ENTRY_PROFILE, id="time-entry-profile"),
    pytest.param(BILLING_ENCOUNTER_PROFILE, id="billing-encounter-profile"),
])  # fmt: skip
def test_every_extension_and_claimed_profile_is_defined(url: str) -> None:
    assert RESOURCES[url]["resourceType"] == "StructureDefinition"


def test_every_own_extension_in_profiles_is_defined() -> None:
    """The extensions bhi-fhir's own Questionnaires, PlanDefinitions and Measures carry."""
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            url = node.get("url")
            if isinstance(url, str) and "/StructureDefinition/" in url and (
                    url.startswith("https://bhi-fhir.dev/") and "extension" not in node):
                used.add(url)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for folder in ("questionnaires", "plandefinitions", "activitydefinitions", "measures"):
        for path in Path(profiles_dir(), folder).rglob("*.json"):
            walk(json.loads(path.read_text()))
    assert used, "no own extension found: the walk is wrong"
    assert sorted(used - set(RESOURCES)) == []


def test_the_index_lists_every_file() -> None:
    index = json.loads((PACKAGE / ".index.json").read_text())
    files = {p.name for p in PACKAGE.glob("*.json")} - {"package.json", ".index.json"}
    assert {f["filename"] for f in index["files"]} == files
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["name"] == "bhi.fhir" and manifest["fhirVersions"] == ["4.0.1"]
