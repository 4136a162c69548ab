"""Who launched the app, and what they may do in it.

The user is the ``fhirUser`` claim of the verified id_token (SMART App Launch 2.2
scopes-and-launch-context.md, "openid fhirUser": a Patient, Practitioner, PractitionerRole,
RelatedPerson or Person); what they may do is what the granted scopes allow (the server may
grant less than requested; app-launch.md "the client SHOULD inspect the scope").

* **patient** — a Patient or RelatedPerson: the patient-facing view (their scores over time
  and the screening questionnaires to fill in). Never the care team's actions, the workflow
  plan or the registry: the routes refuse them (403), not only the page hiding the buttons.
* **care team** — a Practitioner or PractitionerRole granted write access to what the
  actions write (``CARE_TEAM_WRITES``).
* **read-only** — any other clinician launch: no write scopes for those types, or a user the
  EHR did not name (no ``fhirUser``) or named as a Person. The page says why.

The demo clinic is the care team's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from smart_app.deps import Refusal
from smart_app.sessions import Session

PATIENT_USERS = ("Patient", "RelatedPerson")
CLINICIAN_USERS = ("Practitioner", "PractitionerRole")
# What the care team's actions write: time (Encounter), tasks (Task), consent (Consent), the
# workflow plan (CarePlan, Task, ServiceRequest), and a Provenance with every write.
CARE_TEAM_WRITES = ("Encounter", "Task", "Consent", "CarePlan", "ServiceRequest", "Provenance")
# What a patient's own questionnaire answers write.
PATIENT_WRITES = ("QuestionnaireResponse", "Provenance")

_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")

RoleKind = Literal["care-team", "read-only", "patient"]


@dataclass(frozen=True)
class Role:
    kind: RoleKind
    user_type: str | None  # the fhirUser's resource type, None when the EHR named no user
    reason: str = ""  # why read-only, in the clinician's terms

    @property
    def patient_facing(self) -> bool:
        return self.kind == "patient"

    @property
    def can_write(self) -> bool:
        return self.kind == "care-team"


def user_type(fhir_user: str | None) -> str | None:
    """``Practitioner`` from ``Practitioner/1`` or ``https://ehr/fhir/Practitioner/1``."""
    if not fhir_user:
        return None
    parts = fhir_user.split("/_history")[0].rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None


def user_id(fhir_user: str | None) -> str | None:
    if user_type(fhir_user) is None:
        return None
    assert fhir_user is not None
    return fhir_user.split("/_history")[0].rstrip("/").split("/")[-1]


def may_write(granted: str, resource_type: str) -> bool:
    """Whether a granted scope allows creating or updating ``resource_type`` (v2 ``c``/``u``,
    v1 ``write``/``*``); a v2 scope with a search constraint (``?…``) counts, the server
    enforcing the constraint."""
    for scope in granted.split():
        match = _SCOPE.match(scope)
        if match is None or match.group(1) == "system":
            continue
        kind, perms = match.group(2), match.group(3)
        if kind not in ("*", resource_type):
            continue
        if perms in ("write", "*") or bool(set(perms) & {"c", "u"}):
            return True
    return False


def role_of(session: Session) -> Role:
    if session.demo or session.token is None:
        return Role("care-team", "Practitioner")
    kind = user_type(session.context.fhir_user)
    if kind in PATIENT_USERS:
        return Role("patient", kind)
    if kind not in CLINICIAN_USERS:
        return Role(
            "read-only",
            kind,
            "The EHR did not say which clinician signed in (no fhirUser in a verified "
            "identity token), so the care team's actions are off: every write names its author."
            if kind is None
            else f"The signed-in user is a {kind}, not a clinician of the care team.",
        )
    missing = [t for t in CARE_TEAM_WRITES if not may_write(session.token.scope, t)]
    if missing:
        return Role(
            "read-only",
            kind,
            "This sign-in was granted read access only: no permission to write "
            f"{', '.join(missing)}. To log time, record consent or apply the plan, ask your "
            "EHR administrator for write access and launch the app again.",
        )
    return Role("care-team", kind)


def require_care_team(session: Session) -> Role:
    """The care team's actions (writes, the workflow plan): refused for anyone else."""
    role = require_clinician(session)
    if not role.can_write:
        raise Refusal("Read-only access", role.reason, 403)
    return role


def require_clinician(session: Session) -> Role:
    """Pages for clinicians only, read-only ones included (the registry, the plan preview)."""
    role = role_of(session)
    if role.patient_facing:
        raise Refusal(
            "Not available",
            "This part of the app is for the care team. Your own page shows your scores and "
            "the questionnaires to fill in.",
            403,
        )
    return role


def own_patient(session: Session) -> str | None:
    """The patient a patient-facing user may open: the launch's patient, else a Patient user
    themself (a RelatedPerson needs the launch's patient)."""
    if session.context.patient:
        return session.context.patient
    if user_type(session.context.fhir_user) == "Patient":
        return user_id(session.context.fhir_user)
    return None
