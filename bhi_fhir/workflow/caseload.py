"""Care managers' caseloads: whose caseload an enrolled patient counts towards, the counts over
many patients, and which care manager a newly enrolled patient is assigned (the one already on
their CarePlan, else the least loaded with room, by each care manager's capacity in the plan)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bhi_fhir.practice_plan import CareManager, PracticePlan
from bhi_fhir.timeline import is_enrollment
from bhi_fhir.workflow.plan_settings import enrollment_rule

__all__ = ["assign_care_manager", "caseload_manager", "count_caseloads"]


def caseload_manager(resource: Mapping[str, Any], plan: PracticePlan) -> str | None:
    """The care manager whose active caseload ``resource`` counts towards, or None.

    A caseload is the patients enrolled (the practice's own active BHI CarePlan,
    :func:`~bhi_fhir.timeline.is_enrollment`) listing the care manager as a contributor; the
    first of the plan's care managers among the contributors is the one the patient counts for.
    """
    if not is_enrollment(resource, enrollment_rule(plan)):
        return None
    managers = {m.reference for m in plan.team.care_managers}
    for contributor in resource.get("contributor") or []:
        ref = contributor.get("reference") if isinstance(contributor, Mapping) else None
        if ref in managers:
            return str(ref)
    return None


def count_caseloads(resources: Iterable[Mapping[str, Any]], plan: PracticePlan) -> dict[str, int]:
    """Care-manager reference → active caseload, counted from ``resources`` (every patient's
    CarePlans, e.g. a search for active BHI CarePlans): the ``caseloads`` input of :func:`apply`.
    """
    loads: dict[str, int] = {}
    for resource in resources:
        manager = caseload_manager(resource, plan)
        if manager is not None:
            loads[manager] = loads.get(manager, 0) + 1
    return loads


def assign_care_manager(
    plan: PracticePlan, caseloads: Mapping[str, int] | None = None, current: list[str] | None = None
) -> CareManager:
    """The patient's care manager: the one already on their CarePlan (``current``), else the
    one with the lowest active caseload that has room, else the least loaded."""
    managers = plan.team.care_managers
    for ref in current or []:
        for manager in managers:
            if manager.reference == ref:
                return manager
    loads = caseloads or {}
    with_room = [m for m in managers if loads.get(m.reference, 0) < m.capacity]
    pool = with_room or list(managers)
    return min(pool, key=lambda m: (loads.get(m.reference, 0) / m.capacity, managers.index(m)))
