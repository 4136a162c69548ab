"""One PHQ-9 screen stored three ways, for the surface tests (apply, sync, app, score).

Shapes: a QuestionnaireResponse (LL358-3 LA answers, US Core PHQ-9 example); Synthea 3.3
output (a DiagnosticReport with the panel code 44249-1 whose one ``result`` is the
total Observation 44261-6, category ``survey``, ``valueQuantity`` unit ``{score}``, no items;
in a transaction Bundle every reference is a ``urn:uuid:`` fullUrl); bhi-fhir's own derived
Observations (``screening_observations``, ``derivedFrom`` the response, US Core screening).
"""

from __future__ import annotations

from typing import Any

from bhi_fhir.instruments import full_url, score_response, screening_observations
from tests.instruments.build import FREQ, PHQ9, coding

SURVEY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "survey"}]}]
# 15: moderately severe and positive (Kroenke 2001 bands, cut point 10); item 9 = 0.
POINTS = [3, 3, 3, 3, 3, 0, 0, 0, 0]
TOTAL = sum(POINTS)


def phq9_response(patient: str, when: str, *, rid: str = "qr-1",
                  points: list[int] = POINTS) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
        "subject": {"reference": f"Patient/{patient}"}, "authored": when,
        "item": [{"linkId": f"/{k}", "answer": [coding(FREQ[p])]}
                 for k, p in zip(PHQ9, points, strict=True)],
    }


def synthea_screen(patient: str, when: str, *, total: int = TOTAL, rid: str = "dr-1",
                   oid: str = "obs-1", subject: str | None = None) -> list[dict[str, Any]]:
    """The DiagnosticReport and its one total Observation, as a server stores them."""
    subject_ref = {"reference": subject or f"Patient/{patient}"}
    observation = {
        "resourceType": "Observation", "id": oid, "status": "final", "category": SURVEY,
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": subject_ref, "effectiveDateTime": when, "issued": when,
        "valueQuantity": {"value": total, "unit": "{score}", "system": "http://unitsofmeasure.org",
                          "code": "{score}"},
    }
    report = {
        "resourceType": "DiagnosticReport", "id": rid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44249-1"}]},
        "subject": subject_ref, "effectiveDateTime": when, "issued": when,
        "result": [{"reference": f"Observation/{oid}" if subject is None else f"urn:uuid:{oid}"}],
    }
    return [report, observation]


def synthea_bundle(patient: str, when: str, *, gender: str = "female",
                   total: int = TOTAL) -> dict[str, Any]:
    """A Synthea transaction Bundle: Patient, report and total, referenced by urn:uuid."""
    resources = [{"resourceType": "Patient", "id": patient, "gender": gender},
                 *synthea_screen(patient, when, total=total, rid=f"dr-{patient}",
                                 oid=f"obs-{patient}", subject=f"urn:uuid:{patient}")]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}


def derived_observations(qr: dict[str, Any]) -> list[dict[str, Any]]:
    """bhi-fhir's own Observations for ``qr``, with server ids, as a server returns them."""
    found = screening_observations(score_response(qr), qr)
    ids = {}
    for n, obs in enumerate(found):
        obs["id"] = f"{qr['id']}-obs-{n}"
        ids[full_url(obs["identifier"][0]["value"])] = f"Observation/{obs['id']}"
    for obs in found:  # the transaction's urn:uuid members, resolved as the server does
        for member in obs.get("hasMember") or []:
            member["reference"] = ids[member["reference"]]
    return found
