"""FHIR resources and scores for the measure tests."""

from __future__ import annotations

from typing import Any

from bhi_fhir.codes import CPT, ICD10CM, LOINC, SNOMED
from bhi_fhir.instruments.result import Score
from bhi_fhir.measures.common import PatientData
from bhi_fhir.measures.valuesets import codes

PATIENT = "Patient/p1"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def code_in(value_set: str) -> tuple[str, str]:
    """A (system, code) of the published value set (its first code, sorted)."""
    system, code = sorted(codes(value_set))[0].split("|", 1)
    return ("http://" + system if not system.startswith("urn") else system), code


def patient(birth: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "birthDate": birth, **extra}


def encounter(rid: str, start: str, end: str | None = None, *, code: str = "99213",
              system: str = CPT, status: str = "finished", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": rid, "status": status,
            "type": [{"coding": [{"system": system, "code": code}]}],
            "subject": {"reference": PATIENT},
            "period": {"start": start, "end": end or start}, **extra}


def condition(rid: str, code: str, onset: str | None, *, system: str = ICD10CM,
              clinical: str = "active", verification: str = "confirmed",
              category: str = "problem-list-item", abatement: str | None = None,
              recorded: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition", "id": rid,
        "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": _VERIFICATION, "code": verification}]},
        "category": [{"coding": [{"system": _CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": PATIENT},
    }
    if onset:
        resource["onsetDateTime"] = onset
    if abatement:
        resource["abatementDateTime"] = abatement
    if recorded:
        resource["recordedDate"] = recorded
    return resource


def score(instrument: str, day: str, total: int | None = None, *, positive: bool | None = None,
          rid: str | None = None, status: str = "completed") -> Score:
    if positive is None and total is not None:
        positive = total >= (3 if instrument == "phq2" else 10)
    return Score(instrument=instrument, total=total, severity=None,  # type: ignore[arg-type]
                 positive=positive, complete=total is not None,
                 response_ref=f"QuestionnaireResponse/{rid or instrument + '-' + day}",
                 subject_ref=PATIENT, authored=day, status=status)


def screen_observation(rid: str, day: str, positive: bool, *, adult: bool = True,
                       status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": status,
            "code": {"coding": [{"system": LOINC, "code": "73832-8" if adult else "73831-0"}]},
            "subject": {"reference": PATIENT}, "effectiveDateTime": day,
            "valueCodeableConcept": {"coding": [{
                "system": SNOMED, "code": "428181000124104" if positive else "428171000124102"}]}}


def declined_observation(rid: str, issued: str, *, adult: bool = True) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "cancelled",
            "code": {"coding": [{"system": LOINC, "code": "73832-8" if adult else "73831-0"}]},
            "subject": {"reference": PATIENT}, "issued": f"{issued}T10:00:00Z",
            "extension": [{
                "url": "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-notDoneReason",
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "720834000"}]}}]}


def medication_order(rid: str, authored: str, value_set: str = "Adult Depression Medications",
                     *, status: str = "active", intent: str = "order") -> dict[str, Any]:
    system, code = code_in(value_set)
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": intent,
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": PATIENT}, "authoredOn": authored}


def referral(rid: str, authored: str, value_set: str = "Referral for Adult Depression",
             *, status: str = "active") -> dict[str, Any]:
    system, code = code_in(value_set)
    return {"resourceType": "ServiceRequest", "id": rid, "status": status, "intent": "order",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": PATIENT}, "authoredOn": authored}


def procedure(rid: str, performed: str, value_set: str = "Follow Up for Adult Depression",
              *, status: str = "completed") -> dict[str, Any]:
    system, code = code_in(value_set)
    return {"resourceType": "Procedure", "id": rid, "status": status,
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": PATIENT}, "performedDateTime": performed}


def data(resources: list[dict[str, Any]], scores: list[Score] | tuple[Score, ...] = ()
         ) -> PatientData:
    return PatientData(PATIENT, resources, tuple(scores))


def dispense(rid: str, handed_over: str, value_set: str = "Adult Depression Medications",
             *, status: str = "completed") -> dict[str, Any]:
    system, code = code_in(value_set)
    return {"resourceType": "MedicationDispense", "id": rid, "status": status,
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": PATIENT}, "whenHandedOver": handed_over}


def total_observation(rid: str, day: str, total: int, loinc: str = "44261-6") -> dict[str, Any]:
    """A screening total as EHRs and Synthea hold it (US Core Observation Screening Assessment,
    category survey, valueQuantity {score})."""
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "survey"}]}],
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": PATIENT}, "effectiveDateTime": day,
            "valueQuantity": {"value": total, "unit": "{score}",
                              "system": "http://unitsofmeasure.org", "code": "{score}"}}


def scored(resources: list[dict[str, Any]]) -> PatientData:
    """The patient's data with its screens scored by the one scorer (QuestionnaireResponses and
    screening Observations alike), as the measure command does."""
    from bhi_fhir.instruments.screens import screening_scores

    return PatientData(PATIENT, resources, tuple(screening_scores(resources)))
