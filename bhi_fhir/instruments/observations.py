"""Screening Observations for a scored response, shaped as US Core Screening Assessment ones
and claiming bhi-fhir's own profiles (bhi-screening-item, -total, -panel in meta.profile).

One panel Observation (the instrument's LOINC panel code) whose ``hasMember`` lists an
Observation per answered item (its answer Coding — the LA code — as valueCodeableConcept, as
in the US Core PHQ-9 examples; valueInteger when the answer was a number) and, when the
response is complete, the total with its interpretation (positive/negative and the
severity band); every one ``derivedFrom`` the QuestionnaireResponse and category ``survey``.
An incomplete response whose answers already decide the screen carries positive/negative on
the panel instead. A response that is not final (``Score.final``) has none.

Identifiers are deterministic — ``<response>#<instrument>/<part>`` in ``BHI_IDENTIFIER`` — so a
re-run produces the same resources, and a writer can send them with ``ifNoneExist`` on that
identifier. ``hasMember`` references use ``urn:uuid:`` full URLs derived from the same
identifiers (``full_url``), which a transaction Bundle resolves to the server's ids.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

from bhi_fhir.codes import (
    BHI_ACTIVITY,
    BHI_IDENTIFIER,
    LOINC,
    OBSERVATION_CATEGORY,
    SCREENING_ITEM_PROFILE,
    SCREENING_PANEL_PROFILE,
    SCREENING_TOTAL_PROFILE,
    claims,
)
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.instruments.registry import BY_ID
from bhi_fhir.instruments.result import Score
from bhi_fhir.instruments.spec import InstrumentSpec

INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SEVERITY_SYSTEM: Final = "https://bhi-fhir.dev/fhir/CodeSystem/screening-severity"
UCUM: Final = "http://unitsofmeasure.org"
_NAMESPACE: Final = uuid.UUID("6f1c1d0e-5b7a-4d43-9a43-0c6b7f1e2a10")



def full_url(identifier_value: str) -> str:
    """The ``urn:uuid:`` a transaction uses for the resource with this business identifier."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, identifier_value)}"


def response_key(qr: Mapping[str, Any]) -> str:
    """A stable name for the response: its reference, or a digest of its content if it has no id."""
    if isinstance(qr.get("id"), str) and qr["id"]:
        return f"QuestionnaireResponse/{qr['id']}"
    digest = hashlib.sha256(json.dumps(qr, sort_keys=True).encode()).hexdigest()[:32]
    return f"QuestionnaireResponse/sha256-{digest}"


def screening_observations(score: Score, qr: Mapping[str, Any]) -> list[Resource]:
    """The panel, item and total Observations for ``score``; empty when not recognised.

    Order: items, total, panel — members before the panel that points at them.
    """
    if score.instrument is None or score.subject_ref is None or not score.final:
        return []  # a draft, abandoned or erroneous response holds no results
    spec = BY_ID[score.instrument]
    key = f"{response_key(qr)}#{spec.id}"
    base: Resource = {
        "resourceType": "Observation",
        "status": "final" if score.complete else "preliminary",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
        "subject": {"reference": score.subject_ref},
        "derivedFrom": [{"reference": response_key(qr)}],
    }
    if score.authored:
        base["effectiveDateTime"] = score.authored
        base["issued"] = _instant(score.authored)

    members: list[Resource] = []
    for item in spec.items:
        if item.key not in score.items:
            continue
        coding = score.codings.get(item.key)
        value: Resource = (
            {"valueCodeableConcept": {"coding": [coding]}} if coding and "code" in coding
            else {"valueInteger": score.items[item.key]}
        )
        members.append(_observation(base, f"{key}/item/{item.key}", _code(item.key, item.text),
                                    value))
    if score.total is not None:
        total = _observation(
            base, f"{key}/total", _total_code(spec),
            {"valueQuantity": {"value": score.total, "unit": "{score}", "system": UCUM,
                               "code": "{score}"}},
        )
        total["interpretation"] = _interpretation(score)
        members.append(total)
    elif spec.id == "cssrs" and score.severity is not None:
        members.append(
            _observation(base, f"{key}/risk", _code("93374-7", "Suicide risk level"),
                         {"valueCodeableConcept": _severity(score.severity)})
        )
    panel = _observation(base, f"{key}/panel", _panel_code(spec), {})
    if score.total is None and score.positive is not None and spec.sums:
        # Decided by the answered items' bounds (positive-/negative-by-bound): no total to
        # carry it, so the panel does.
        panel["interpretation"] = _interpretation(score)
    panel["hasMember"] = [{"reference": full_url(_identifier_value(m))} for m in members]
    if score.flags:
        panel["note"] = [{"text": "flags: " + ", ".join(score.flags)}]
    return [*members, panel]


def _observation(base: Resource, ident: str, code: Resource, value: Resource) -> Resource:
    # The bhi-fhir profile by shape: a total is a Quantity, an item (or the C-SSRS risk level)
    # a coded or integer answer, the panel has no value (its hasMember is set after).
    profile = (SCREENING_TOTAL_PROFILE if "valueQuantity" in value
               else SCREENING_ITEM_PROFILE if value else SCREENING_PANEL_PROFILE)
    return {
        "resourceType": "Observation",
        "meta": claims(profile),
        **base,
        "identifier": [{"system": BHI_IDENTIFIER, "value": ident}],
        "code": code,
        **value,
    }


def _identifier_value(resource: Resource) -> str:
    return str(resource["identifier"][0]["value"])


def _code(key: str, text: str) -> Resource:
    system = LOINC if key[:1].isdigit() else BHI_ACTIVITY
    return {"coding": [{"system": system, "code": key, "display": text}], "text": text}


def _panel_code(spec: InstrumentSpec) -> Resource:
    if spec.panel_code:
        return {"coding": [{"system": LOINC, "code": spec.panel_code, "display": spec.title}],
                "text": spec.title}
    return _code(f"{spec.id}-panel", spec.title)


def _total_code(spec: InstrumentSpec) -> Resource:
    text = f"{spec.title} total score"
    if spec.total_code:
        return {"coding": [{"system": LOINC, "code": spec.total_code, "display": text}],
                "text": text}
    return _code(f"{spec.id}-total", text)


def _interpretation(score: Score) -> list[Resource]:
    out: list[Resource] = []
    if score.positive is not None:
        code, display = ("POS", "Positive") if score.positive else ("NEG", "Negative")
        out.append({"coding": [{"system": INTERPRETATION, "code": code, "display": display}]})
    if score.severity:
        out.append(_severity(score.severity))
    return out


def _severity(band: str) -> Resource:
    text = band.replace("-", " ").capitalize()
    return {"coding": [{"system": SEVERITY_SYSTEM, "code": band, "display": text}], "text": text}


def _instant(authored: str) -> str:
    """``issued`` is an instant: a bare date gets midnight UTC."""
    return authored if "T" in authored else f"{authored}T00:00:00Z"
