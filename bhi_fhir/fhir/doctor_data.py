"""What ``doctor`` checks beyond the server's capabilities: the data the workflow depends on.

* The practice plan's references — team members (Practitioner/PractitionerRole), who keeps
  the crisis directory, caseload-review attendees, the directory's performers
  (Organization/HealthcareService) — must exist on the server: Tasks and ServiceRequests
  point at them. One search per resource type (``_id=a,b,c``), not one read each.
* The screening data present: how many QuestionnaireResponses, and how many survey-category
  Observations per instrument's LOINC total score (``_summary=count``, no resource read).

Read-only; ids in the report are the plan's own (configuration, not patient data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bhi_fhir.codes import LOINC
from bhi_fhir.fhir.client import FhirClient, _json
from bhi_fhir.fhir.errors import FhirError
from bhi_fhir.fhir.profile import Check
from bhi_fhir.instruments import INSTRUMENTS
from bhi_fhir.practice_plan import PracticePlan

__all__ = [
    "SCREENING_TOTAL_CODES",
    "PlanCheck",
    "ScreeningCounts",
    "check_plan_references",
    "count_screening_data",
    "plan_references",
]

# The LOINC total-score code of every instrument that has one (the registry's own list).
SCREENING_TOTAL_CODES: tuple[str, ...] = tuple(s.total_code for s in INSTRUMENTS if s.total_code)
_ID_BATCH = 100  # ids per search: keeps the URL short on a big plan


def plan_references(plan: PracticePlan) -> dict[str, list[str]]:
    """``Type/id`` → the plan keys that name it, in plan order."""
    found: dict[str, list[str]] = {}

    def add(reference: str, where: str) -> None:
        found.setdefault(reference, []).append(where)

    team = plan.team
    add(team.billing_practitioner.reference, "team.billing_practitioner")
    for index, manager in enumerate(team.care_managers):
        add(manager.reference, f"team.care_managers.{index}")
    add(team.psychiatric_consultant.reference, "team.psychiatric_consultant")
    add(team.clinician_on_duty.reference, "team.clinician_on_duty")
    for index, attendee in enumerate(plan.handoffs.caseload_review_attendees):
        add(attendee, f"handoffs.caseload_review_attendees.{index}")
    add(plan.crisis.maintained_by, "crisis.maintained_by")
    for level, target in plan.crisis.directory.items():
        add(target.performer, f"crisis.directory.{level}.performer")
    return found


@dataclass(frozen=True)
class PlanCheck:
    """Which of the plan's references the server has."""

    references: Mapping[str, list[str]]
    missing: tuple[str, ...] = ()
    unverified: Mapping[str, str] = field(default_factory=dict)  # type → why it could not be
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unverified

    def check(self) -> Check:
        if self.ok:
            return Check(
                "practice plan references", "ok", f"all {len(self.references)} exist on the server"
            )
        parts = [f"{ref} (plan: {', '.join(self.references[ref])})" for ref in self.missing]
        parts += [f"{kind}: {why}" for kind, why in self.unverified.items()]
        return Check(
            "practice plan references",
            "fail",
            f"{len(self.missing)} of {len(self.references)} missing on the server — "
            + "; ".join(parts),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "references": len(self.references),
            "missing": [{"reference": r, "plan": self.references[r]} for r in self.missing],
            "unverified": dict(self.unverified),
        }


async def check_plan_references(client: FhirClient, plan: PracticePlan) -> PlanCheck:
    """Search each referenced type once by ``_id`` and list what did not come back."""
    references = plan_references(plan)
    by_type: dict[str, list[str]] = {}
    for reference in references:
        kind, _, ident = reference.partition("/")
        by_type.setdefault(kind, []).append(ident)
    present: set[str] = set()
    unverified: dict[str, str] = {}
    before = client.request_count
    for kind, ids in by_type.items():
        try:
            for start in range(0, len(ids), _ID_BATCH):
                chunk = ids[start : start + _ID_BATCH]
                params: dict[str, str | int] = {
                    "_id": ",".join(chunk),
                    "_elements": "id",
                    "_count": len(chunk),
                }
                async for resource in client.search(kind, params):
                    if resource.get("resourceType") == kind and resource.get("id"):
                        present.add(f"{kind}/{resource['id']}")
        except FhirError as err:
            unverified[kind] = f"search failed ({err.message})"
    missing = tuple(
        r for r in references if r not in present and r.partition("/")[0] not in unverified
    )
    return PlanCheck(references, missing, unverified, client.request_count - before)


@dataclass(frozen=True)
class ScreeningCounts:
    questionnaire_responses: int | None
    observations: Mapping[str, int | None]  # LOINC total code → count (None: not countable)
    problems: tuple[str, ...] = ()

    def check(self) -> Check:
        if self.problems:
            return Check("screening data", "warn", "; ".join(self.problems))
        total = (self.questionnaire_responses or 0) + sum(
            n or 0 for n in self.observations.values()
        )
        counted = ", ".join(f"{code}: {n}" for code, n in self.observations.items() if n)
        detail = f"{self.questionnaire_responses or 0} QuestionnaireResponses; survey " + (
            f"Observations {counted}" if counted else "Observations: none with a total score"
        )
        if total == 0:
            return Check("screening data", "warn", "none yet: " + detail)
        return Check("screening data", "ok", detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "questionnaire_responses": self.questionnaire_responses,
            "observations": dict(self.observations),
            "problems": list(self.problems),
        }


async def count_screening_data(client: FhirClient) -> ScreeningCounts:
    """``_summary=count`` searches: QuestionnaireResponses, and survey Observations per code."""
    problems: list[str] = []
    responses = await _count(client, "QuestionnaireResponse", {}, problems)
    observations: dict[str, int | None] = {}
    for code in SCREENING_TOTAL_CODES:
        params = {"category": "survey", "code": f"{LOINC}|{code}"}
        observations[code] = await _count(client, "Observation", params, problems)
    return ScreeningCounts(responses, observations, tuple(dict.fromkeys(problems)))


async def _count(
    client: FhirClient, kind: str, params: dict[str, str], problems: list[str]
) -> int | None:
    try:
        # One page: a count search returns no entries, only the total (R4 search.html#summary).
        bundle = _json(await client.request("GET", kind, params={**params, "_summary": "count"}))
    except FhirError as err:
        problems.append(f"cannot count {kind}: {err.message}")
        return None
    total = bundle.get("total")
    if not isinstance(total, int) or isinstance(total, bool):
        problems.append(f"cannot count {kind}: the server gave no total")
        return None
    return total
